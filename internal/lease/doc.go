// Package lease elects one holder of a piece of work (a cluster's log stream,
// its scheduled jobs) among several drd processes, through an object in a
// store: no coordinator, no trust in another host's clock.
//
// The lease object holds its holder, a generation and a renewal counter.
// Taking a free key is an exclusive create (storage.ExclusiveCreator);
// every other write is a compare-and-swap on the version read
// (storage.Swapper), so of two writers exactly one succeeds. The
// generation grows by one at every change of holder: it is the fencing
// token the holder writes into what it produces, so that a paused old
// holder's late writes can be told apart.
//
// Expiry is judged on each process's own monotonic clock, never by
// comparing wall clocks across hosts:
//
//   - an observer takes the lease over only after it has seen the same
//     version of the object, unchanged, for a whole TTL, measured from when
//     it first saw that version;
//   - the holder stops working when 9/10 of a TTL has passed since it sent
//     its last successful renewal — before any observer can have waited a
//     TTL since that write became visible — whether or not it could renew.
//
// Why hand-written: the store is the only service every drd shares (no
// etcd, ZooKeeper or Kubernetes API may be assumed), and no library builds
// leases on S3 conditional writes and file locks.
//
// Imports storage.
package lease
