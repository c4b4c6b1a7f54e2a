// Package wire carries simulated devices to a running carehub through its
// public contract only: registration through the HTTP API (Registrar, with
// the credentials it issued kept in a State file; contract §4), one MQTT
// connection per device (Fleet, the Transport of sim.Runner; contract §1),
// and homesim's two bulk modes: the load generator (PlanLoad, RunLoad),
// which carebench drives through homesim -load, and the backfill of
// residents' history (Backfill). What the homes do is package sim's.
package wire
