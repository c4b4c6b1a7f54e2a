package rules

import "testing"

func TestNEWS2Scores(t *testing.T) {
	cases := []struct {
		name string
		f    func(float64) int
		in   []float64
		want []int
	}{
		{"resp", News2Resp, []float64{8, 9, 11, 12, 20, 21, 24, 25}, []int{3, 1, 1, 0, 0, 2, 2, 3}},
		{"spo2 scale 1", func(v float64) int { return News2SpO2(v, 1) }, []float64{91, 92, 93, 94, 95, 96}, []int{3, 2, 2, 1, 1, 0}},
		{"spo2 scale 2", func(v float64) int { return News2SpO2(v, 2) }, []float64{83, 84, 85, 86, 87, 88, 92, 97}, []int{3, 2, 2, 1, 1, 0, 0, 0}},
		{"systolic", News2Systolic, []float64{90, 91, 100, 101, 110, 111, 219, 220}, []int{3, 2, 2, 1, 1, 0, 0, 3}},
		{"pulse", News2Pulse, []float64{40, 41, 50, 51, 90, 91, 110, 111, 130, 131}, []int{3, 1, 1, 0, 0, 1, 1, 2, 2, 3}},
		{"temp", News2Temp, []float64{35.0, 35.1, 36.0, 36.1, 38.0, 38.1, 39.0, 39.1}, []int{3, 1, 1, 0, 0, 1, 1, 2}},
	}
	for _, tc := range cases {
		for i, v := range tc.in {
			if got := tc.f(v); got != tc.want[i] {
				t.Errorf("%s(%g) = %d, want %d", tc.name, v, got, tc.want[i])
			}
		}
	}
}
