#!/bin/sh
# Draw the plot of a bench run: round trip (spinning) and one-way throughput
# against message size, one line per system (shmkit and each peer), from
# the data file shmkit-bench writes with SHMKIT_BENCH_DATA=FILE
# (bench/peer_suite.c).  Needs gnuplot (Debian gnuplot-nox).
#
#   sh scripts/plot.sh DATA.tsv OUT.png
set -eu
DATA=$1
OUT=$2
command -v gnuplot >/dev/null 2>&1 || { echo "plot: gnuplot not installed (Debian gnuplot-nox)" >&2; exit 1; }
[ -s "$DATA" ] || { echo "plot: no data in $DATA" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
series=$(awk -F'\t' '!/^#/ { print $1 }' "$DATA" | awk '!seen[$0]++')
for s in $series; do
	for m in rtt_spin stream; do
		awk -F'\t' -v s="$s" -v m="$m" '$1 == s && $2 == m { print $3 "\t" $4 }' "$DATA" |
			sort -n > "$tmp/$s.$m"
	done
done
machine=$(sed -n 's/^# shmkit-bench data; //p' "$DATA" | head -1)
stamp="$(date -u +%Y-%m-%d), $(nproc) CPUs, $(uname -r); $machine"
plots() {
	m=$1; sep=""; i=0
	for s in $series; do
		i=$((i + 1))   # one line style per system, the same in both panels
		[ -s "$tmp/$s.$m" ] || continue
		printf '%s"%s" using 1:2 with linespoints ls %d title "%s"' "$sep" "$tmp/$s.$m" "$i" "$s"
		sep=", "
	done
}
gnuplot <<GP
set terminal pngcairo size 1200,520 font "sans,10" noenhanced
set style line 1 lc rgb "#d62728" lw 2 pt 7
set style line 2 lc rgb "#1f77b4" lw 1.5 pt 5
set style line 3 lc rgb "#2ca02c" lw 1.5 pt 9
set style line 4 lc rgb "#ff7f0e" lw 1.5 pt 11
set style line 5 lc rgb "#9467bd" lw 1.5 pt 13
set output "$OUT"
set multiplot layout 1,2 title "shmkit-bench: shmkit and its peers, same run, same two pinned CPUs\n$stamp"
set logscale xy
set grid
set key top left
set xlabel "message size (bytes)"
set format x "%.0s%cB"
set title "round trip, both sides spinning (lower is better)"
set ylabel "ns per round trip"
plot $(plots rtt_spin)
set title "one-way throughput (higher is better)"
set ylabel "messages per second"
set key bottom left
set format y "%.0s%c"
plot $(plots stream)
unset multiplot
GP
echo "plot: wrote $OUT"
