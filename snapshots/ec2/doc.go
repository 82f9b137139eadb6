// Package ec2 copies machine images (AMIs) and EBS volume snapshots from one
// region to others through the EC2 API (or an EC2-compatible cloud's), keeps
// the newest of them, and deletes the rest: what AWS Backup copy actions and
// Data Lifecycle Manager cross-region rules do, run from drd's schedules.
//
// A run for one destination region:
//
//  1. lists the sources in the source region (filters: tags and/or ids, plus
//     the snapshots this entry took with create) and the copies already in
//     the destination (tagged drkit:job=<entry>, or untagged but carrying
//     this entry's description: a crash between the copy call and the tag);
//  2. deletes failed copies and copies pending longer than the timeout;
//  3. copies the sources that retention keeps and the destination lacks,
//     with CopyImage/CopySnapshot called in the destination region with
//     SourceRegion, at most MaxConcurrent at once per destination; each copy
//     is described as "drkit:<entry> copy of <id> from <region>" in the call
//     itself (CopySnapshot has no client token, so the description is what
//     makes a retry find the copy it made), then tagged, then waited for with
//     the SDK's waiters up to the timeout;
//  4. prunes: copies that retention no longer keeps are deleted — images
//     deregistered and their snapshots deleted unless another image still
//     uses them; never the newest good copy, never a snapshot a registered
//     image uses.
//
// Retention ranks copies by their source's creation time (tag
// drkit:source-time): keep the newest Keep, and those younger than
// KeepWithin. A copy still pending does not count, so an old copy is deleted
// only once its replacement is available.
//
// Why hand-written: the SDK gives the calls and waiters (used), but no
// library does cross-region copy with idempotent retries and this retention;
// AWS's own answers (Backup, DLM) are services, not available on
// EC2-compatible clouds. OUTSCALE copies neither images nor snapshots across
// Regions this way: its CopyImage, CopySnapshot and CreateSnapshot take only
// a source in the account's own Region (its path is export to OOS, copy,
// import: not done here).
package ec2
