# Shared by the bench scripts (source it after setting $work).

# measure NAME CMD...: runs CMD under /usr/bin/time -v after dropping the page
# cache (when allowed); prints "seconds rss_kib".
measure() {
  local out="$work/time.$1"; shift
  sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true
  /usr/bin/time -v "$@" >/dev/null 2>"$out" || { cat "$out" >&2; exit 1; }
  local wall rss
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$out")
  rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$out")
  python3 -c "import sys; p=sys.argv[1].split(':'); s=sum(float(x)*60**i for i,x in enumerate(reversed(p))); print(f'{s:.3f} {sys.argv[2]}')" "$wall" "$rss"
}

# median: the median of the numbers on stdin, one per line.
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
