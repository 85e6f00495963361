#!/bin/sh
# man-links.sh [--remove] DIR PAGE... - for each section-3 area page
# (man/shmkit_AREA.3), write DIR/FUNCTION.3 holding ".so man3/shmkit_AREA.3"
# for every function its NAME line lists, so that `man 3 shmkit_chan_send`
# shows the channel page; with --remove, delete those pages again.  DIR is
# the installed man3 directory ($(DESTDIR)$(MANDIR)/man3); the area pages
# themselves are installed (and removed) by the caller.  Redirect pages,
# not symbolic links: man-db and mandoc both follow .so, and packaging
# tools accept them.
set -eu
remove=false
[ "${1:-}" = --remove ] && { remove=true; shift; }
[ $# -ge 2 ] || { echo "usage: man-links.sh [--remove] DIR PAGE..." >&2; exit 2; }
dir=$1
shift
for page in "$@"; do
	area=$(basename "$page")
	# The line after ".SH NAME": "shmkit_a, shmkit_b, ... \- summary".
	names=$(sed -n '/^\.SH NAME/{n;p;q;}' "$page" | sed 's/\\-.*//; s/,/ /g')
	[ -n "$names" ] || { echo "man-links.sh: $page has no NAME line" >&2; exit 1; }
	for n in $names; do
		[ "$n.3" = "$area" ] && continue
		if $remove; then
			rm -f "$dir/$n.3"
		else
			printf '.so man3/%s\n' "$area" > "$dir/$n.3"
			chmod 644 "$dir/$n.3"
		fi
	done
done
