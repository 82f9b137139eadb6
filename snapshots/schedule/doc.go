// Package schedule runs drd's periodic jobs (base backups, backup-set copies,
// image and volume-snapshot copies) on cron schedules, with a record of every run kept
// in a region's store rather than on drd's disk.
//
// Per job and activation (the cron time a run belongs to) one record,
// <prefix>/<job>/<activation>.json, is created with an exclusive write
// (storage.PutIfAbsent): that is the lease. Of two drd instances sharing the
// store only the one whose create succeeds runs the activation; the other
// skips it. The record is then updated with the run's result, duration and
// bytes, and the newest History records form the job's history.
//
// On start, a job whose newest record is older than its last activation has
// missed runs: with catch-up "once" it runs once now (for the latest missed
// activation), with "skip" it waits for the next. A job that never ran waits
// for its first activation. A job's runs never overlap: one goroutine runs
// each job, an activation due while a run goes on is skipped, and a record
// still "running" (from another instance, which rewrites it every minute)
// makes this instance skip too; one not renewed for three minutes belongs to
// a drd that died and no longer blocks the job.
//
// robfig/cron parses the schedules; its runner is not used because it keeps
// no record and has no catch-up or lease.
package schedule
