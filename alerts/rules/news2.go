package rules

// NEWS2 parameter scores (Royal College of Physicians, National Early
// Warning Score 2, 2017, chart 1). Each takes the value as measured; the
// boundaries are the chart's, read as "up to and including" so that
// fractional device values fall into the band a clinician would round to.
// Consciousness and supplemental oxygen are unknown to carehub and score 0
// (alert, on air).

// News2Resp scores a respiration rate: ≤ 8 → 3, 9–11 → 1, 12–20 → 0,
// 21–24 → 2, ≥ 25 → 3.
func News2Resp(v float64) int {
	switch {
	case v <= 8:
		return 3
	case v <= 11:
		return 1
	case v <= 20:
		return 0
	case v <= 24:
		return 2
	}
	return 3
}

// News2SpO2 scores an oxygen saturation on scale 1 (≤ 91 → 3, 92–93 → 2,
// 94–95 → 1) or scale 2 for hypercapnic respiratory failure (≤ 83 → 3,
// 84–85 → 2, 86–87 → 1, ≥ 88 on air → 0).
func News2SpO2(v float64, scale int) int {
	if scale == 2 {
		switch {
		case v <= 83:
			return 3
		case v <= 85:
			return 2
		case v <= 87:
			return 1
		}
		return 0
	}
	switch {
	case v <= 91:
		return 3
	case v <= 93:
		return 2
	case v <= 95:
		return 1
	}
	return 0
}

// News2Systolic scores a systolic pressure: ≤ 90 → 3, 91–100 → 2,
// 101–110 → 1, 111–219 → 0, ≥ 220 → 3.
func News2Systolic(v float64) int {
	switch {
	case v <= 90:
		return 3
	case v <= 100:
		return 2
	case v <= 110:
		return 1
	case v < 220:
		return 0
	}
	return 3
}

// News2Pulse scores a pulse: ≤ 40 → 3, 41–50 → 1, 51–90 → 0, 91–110 → 1,
// 111–130 → 2, ≥ 131 → 3.
func News2Pulse(v float64) int {
	switch {
	case v <= 40:
		return 3
	case v <= 50:
		return 1
	case v <= 90:
		return 0
	case v <= 110:
		return 1
	case v <= 130:
		return 2
	}
	return 3
}

// News2Temp scores a temperature: ≤ 35.0 → 3, 35.1–36.0 → 1,
// 36.1–38.0 → 0, 38.1–39.0 → 1, ≥ 39.1 → 2.
func News2Temp(v float64) int {
	switch {
	case v <= 35.0:
		return 3
	case v <= 36.0:
		return 1
	case v <= 38.0:
		return 0
	case v <= 39.0:
		return 1
	}
	return 2
}
