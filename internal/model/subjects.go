package model

import (
	"strconv"
	"strings"
)

// This file is the one home of carehub's NATS names: every subject, subject
// filter and subject parser, every stream and every key-value bucket
// (contract §3). Other services and the NATS permissions in
// deploy/nats/*.conf use the same names, so none of them changes lightly.
//
// Subject tokens are ids, which the contract restricts to [a-z0-9_-], so
// they never contain '.', '*' or '>'.

// Streams.
const (
	StreamReadings   = "CARE_READINGS"
	StreamEvents     = "CARE_EVENTS"
	StreamStatus     = "CARE_STATUS"
	StreamAlerts     = "CARE_ALERTS"
	StreamDeadLetter = "CARE_DEADLETTER"
	StreamAudit      = "CARE_AUDIT"
	StreamEscalation = "CARE_ESCALATION"
)

// Subject prefixes: each subject family is its prefix followed by ids.
const (
	PrefixReadings      = "care.readings."
	PrefixReadingsBatch = "care.readings.batch."
	PrefixEvents        = "care.events."
	PrefixStatus        = "care.status."
	PrefixAlerts        = "care.alerts."
	PrefixEscalation    = "care.escalation."
	PrefixEmergency     = "care.escalation.119."
	PrefixRejected      = "care.ingest.rejected."
	PrefixDeadLetter    = "care.deadletter."
	PrefixAudit         = "care.audit."
)

// Filters: every subject of a family, as a stream's subjects or a
// subscription.
const (
	SubjectReadingsAll   = PrefixReadings + ">"
	SubjectEventsAll     = PrefixEvents + ">"
	SubjectStatusAll     = PrefixStatus + ">"
	SubjectAlertsAll     = PrefixAlerts + ">"
	SubjectDeadLetterAll = PrefixDeadLetter + ">"
	SubjectAuditAll      = PrefixAudit + ">"
	SubjectRejectedAll   = PrefixRejected + ">"
	SubjectEscalationAll = PrefixEscalation + ">"
	// SubjectEmergencyAll is what the 119 bridge subscribes to.
	SubjectEmergencyAll = PrefixEmergency + ">"
	// SubjectReadingsBatch matches every batch subject; CARE_READINGS holds
	// them through SubjectReadingsAll.
	SubjectReadingsBatch = PrefixReadingsBatch + "*"
	// SubjectAlertsNone is an alert filter that matches nothing ("_none_"
	// is no valid resident id): a consumer that may see no resident yet
	// still gets heartbeats.
	SubjectAlertsNone = PrefixAlerts + "_none_.>"
)

// Audit subjects that name no single resident.
const (
	// SubjectAuditMulti holds entries that name several residents (a
	// list, the overview, a stream delivery): a query for one resident
	// reads it as well and keeps the entries that name them.
	SubjectAuditMulti = PrefixAudit + "_multi"
	// SubjectAuditNone holds entries about no resident (logins, users).
	SubjectAuditNone = PrefixAudit + "_none"
)

// Key-value buckets. One bucket per kind of record, keyed by id, so that a
// watcher on one bucket sees exactly the records of that kind.
const (
	BucketHomes     = "care_homes"
	BucketResidents = "care_residents"
	BucketDevices   = "care_devices"
	BucketPresence  = "care_presence"
	// BucketErased holds a tombstone per erased resident id: no name,
	// only the id and when it was erased.
	BucketErased = "care_erased"
	// BucketSettings holds each resident's rule settings and modes.
	BucketSettings = "care_settings"
	// BucketAlerts holds every alert that is open or was resolved
	// recently, under key "alert.{id}", with its escalation deadline and
	// its transition outbox.
	BucketAlerts = "care_alerts"
	// BucketAssignments holds one escalation chain per resident, keyed by
	// resident id.
	BucketAssignments = "care_assignments"
	BucketUsers       = "care_users"
	BucketTokens      = "care_tokens"
	// BucketLeases holds the roles only one carehub instance may hold at
	// a time (key "alerts": the alert leader), each value the holder's
	// CARE_INSTANCE_ID, expiring unless renewed.
	BucketLeases = "care_leases"
	// BucketInstances names every carehub instance that has run on this
	// NATS, with what others need to drain its MQTT sessions while it is
	// down (its subscriber connection count).
	BucketInstances = "care_instances"
)

// ReadingSubject is where a resident's device readings are published.
func ReadingSubject(residentID, deviceID string) string {
	return PrefixReadings + residentID + "." + deviceID
}

// ReadingBatchSubject is where carehub publishes a batch of a resident's
// readings. The contract lets the partition be anything derived from the
// resident id; carehub uses the resident id itself, so that one resident's
// readings stay in order in one partition, and erasure can purge a
// resident's batches by subject like their single readings.
func ReadingBatchSubject(residentID string) string {
	return PrefixReadingsBatch + residentID
}

// ReadingPartitions is how many partitions carehub's cross-device reading
// batches use (ReadingPartition). Changing it moves residents between
// partitions: consumers check a batch's readings against the partition of
// its subject, so a new count needs the streams drained first.
const ReadingPartitions = 16

// ReadingPartition is the partition of a resident's readings when the
// intake batches the readings of many devices (contract §3: derived from
// the resident id, so one resident's readings stay in order in one
// partition): FNV-1a of the id, modulo ReadingPartitions.
func ReadingPartition(residentID string) int {
	h := uint32(2166136261)
	for i := 0; i < len(residentID); i++ {
		h ^= uint32(residentID[i])
		h *= 16777619
	}
	return int(h % ReadingPartitions)
}

// ReadingPartitionSubject is care.readings.batch._p{n}: the batches of
// every resident of partition n. "_p{n}" is no valid resident id (ids begin
// with [a-z0-9]), so it never meets ReadingBatchSubject's subjects, and
// erasing a resident never purges a partition by accident.
func ReadingPartitionSubject(partition int) string {
	return PrefixReadingsBatch + partitionToken(partition)
}

func partitionToken(partition int) string { return "_p" + strconv.Itoa(partition) }

// EventSubject is where a resident's device events are published.
func EventSubject(residentID, deviceID string) string {
	return PrefixEvents + residentID + "." + deviceID
}

// StatusSubject is where a device's presence reports are published.
func StatusSubject(residentID, deviceID string) string {
	return PrefixStatus + residentID + "." + deviceID
}

// AlertSubject is where alert transitions are published.
func AlertSubject(residentID, severity string) string {
	return PrefixAlerts + residentID + "." + severity
}

// EmergencySubject is where an alert goes when it reaches the emergency
// (119) tier; the 119 bridge subscribes to SubjectEmergencyAll.
func EmergencySubject(residentID string) string { return PrefixEmergency + residentID }

// RejectedSubject is where rejected device input is reported.
func RejectedSubject(deviceID string) string {
	return PrefixRejected + deviceID
}

// DeadLetterSubject is where points InfluxDB refused for good are kept.
func DeadLetterSubject(kind string) string { return PrefixDeadLetter + kind }

// AuditSubject is where accesses to a resident's data are recorded.
func AuditSubject(residentID string) string { return PrefixAudit + residentID }

// ResidentAlertsFilter matches every alert transition of one resident.
func ResidentAlertsFilter(residentID string) string {
	return PrefixAlerts + residentID + ".>"
}

// ResidentFilters are the subjects of a resident's messages in each stream
// that holds them by resident (contract §3: the resident id is the token
// after the stream's prefix; the 119 bridge's is
// care.escalation.119.{resident_id}). A resident's batched readings are on
// ReadingBatchSubject as well.
func ResidentFilters(residentID string) map[string]string {
	return map[string]string{
		StreamReadings:   PrefixReadings + residentID + ".>",
		StreamEvents:     PrefixEvents + residentID + ".>",
		StreamStatus:     PrefixStatus + residentID + ".>",
		StreamAlerts:     ResidentAlertsFilter(residentID),
		StreamEscalation: PrefixEscalation + "*." + residentID,
	}
}

// ResidentOfAlertSubject returns {resident_id} of
// care.alerts.{resident_id}.{severity}, or "" for any other subject.
func ResidentOfAlertSubject(subject string) string {
	rest, ok := strings.CutPrefix(subject, PrefixAlerts)
	if !ok {
		return ""
	}
	r, _, _ := strings.Cut(rest, ".")
	return r
}

// SubjectKind returns the family of a carehub subject, its second token
// ("readings" of care.readings.r1.d1), for logs that must not name ids.
func SubjectKind(subject string) string {
	rest, ok := strings.CutPrefix(subject, "care.")
	if !ok {
		return subject
	}
	kind, _, _ := strings.Cut(rest, ".")
	return kind
}

// SubjectMatchesIDs reports whether a reading, event or status subject
// (care.{readings|events|status}.{resident_id}.{device_id}) names exactly
// the resident and device its message's body does. Consumers check it
// before trusting the body: whoever can publish on one resident's subject
// must not be able to write under, or raise alerts for, another.
func SubjectMatchesIDs(subject, residentID, deviceID string) bool {
	var rest string
	for _, p := range [...]string{PrefixReadings, PrefixEvents, PrefixStatus} {
		if r, ok := strings.CutPrefix(subject, p); ok && r != "" {
			rest = r
			break
		}
	}
	if rest == "" || residentID == "" || deviceID == "" || strings.Contains(residentID, ".") || strings.Contains(deviceID, ".") {
		return false
	}
	// A batch (care.readings.batch.{resident}) names its resident only;
	// "batch" is a reserved resident id, so the two shapes cannot meet.
	// A partition batch (care.readings.batch._p{n}) holds the readings of
	// every resident whose partition is n.
	if batchOf, ok := strings.CutPrefix(subject, PrefixReadingsBatch); ok {
		return batchOf == residentID || batchOf == partitionToken(ReadingPartition(residentID))
	}
	return rest == residentID+"."+deviceID
}
