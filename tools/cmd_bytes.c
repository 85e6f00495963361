/*
 * cmd_bytes.c - the segment subcommands of shmkit that copy bytes: read,
 * write.  Public API only: bytes through the data area of
 * shmkit_seg_open() (the whole mapping of a foreign segment, opened
 * SHMKIT_RAW).
 *
 * Reading and writing copy through a private buffer under a SIGBUS guard:
 * a foreign file truncated behind our back is reported, not a crash.
 *
 * `write` refuses a segment that is not plain bytes unless --raw: one of
 * the two guards against losing data by mistake (tools/cmd_seg.c).
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd.h"

#define CHUNK 65536

/* ---- read / write: bytes under a SIGBUS guard ---------------------------- */

static sigjmp_buf bus_jmp;

static void on_sigbus(int sig)
{
	siglongjmp(bus_jmp, sig);
}

/* memcpy that reports a SIGBUS (the object shrank under the mapping) as
 * -EFAULT instead of dying. */
static int guarded_copy(void *dst, const void *src, size_t n)
{
	struct sigaction sa = { .sa_handler = on_sigbus }, old;
	int err = 0;

	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, &old);
	if (sigsetjmp(bus_jmp, 1) == 0)
		memcpy(dst, src, n);
	else
		err = -EFAULT;
	sigaction(SIGBUS, &old, NULL);
	return err;
}

static int copy_fault(const char *name)
{
	return seg_fail(name, "the segment shrank under its mapping (truncated behind shmkit's back), "
	                "or its pages cannot be had (file system full)");
}

/* Open a managed segment's data area, or a foreign one's whole mapping. */
static int open_bytes(const char *name, unsigned flags, shmkit_seg **seg)
{
	struct shmkit_seg_opts o = { .flags = flags };
	int err = shmkit_seg_open(seg, name, &o);

	if (err == -EPROTO) {
		o.flags |= SHMKIT_RAW;
		err = shmkit_seg_open(seg, name, &o);
	}
	return err;
}

static int check_range(const char *name, size_t size, size_t off, size_t len)
{
	if (off > size)
		return seg_fail(name, "offset %zu is past the end of its %zu bytes", off, size);
	if (len > size - off)
		return seg_fail(name, "%zu bytes at offset %zu go past the end of its %zu bytes",
		                len, off, size);
	return 0;
}

/* One line of a hexdump -C style listing; off is the segment offset. */
static void hex_line(size_t off, const unsigned char *p, size_t n)
{
	printf("%08zx ", off);
	for (size_t i = 0; i < 16; i++) {
		if (i == 8)
			putchar(' ');
		if (i < n)
			printf(" %02x", p[i]);
		else
			printf("   ");
	}
	printf("  |");
	for (size_t i = 0; i < n; i++)
		putchar(isprint(p[i]) ? p[i] : '.');
	printf("|\n");
}

struct hexdump {
	unsigned char prev[16];
	bool have_prev, starred;
};

/* Dump buf (a multiple of 16 bytes except at the end) at segment offset
 * off; repeated lines print once, then "*", as hexdump -C does. */
static void hex_chunk(struct hexdump *h, size_t off, const unsigned char *buf, size_t n)
{
	for (size_t i = 0; i < n; i += 16) {
		size_t k = n - i < 16 ? n - i : 16;
		if (k == 16 && h->have_prev && !memcmp(h->prev, buf + i, 16)) {
			if (!h->starred)
				printf("*\n");
			h->starred = true;
			continue;
		}
		hex_line(off + i, buf + i, k);
		memcpy(h->prev, buf + i, k);
		h->have_prev = k == 16;
		h->starred = false;
	}
}

/* Copy n bytes at off of the data area into buf: through the descriptor
 * where there is one (a hole in a sparse tmpfs file reads as zeros and
 * allocates nothing, where touching it through the mapping would SIGBUS
 * on a full file system), else from the mapping, guarded.  0 or -errno. */
static int read_bytes(shmkit_seg *seg, void *buf, size_t off, size_t n)
{
	struct shmkit_seg_info st;
	int fd = shmkit_seg_fd(seg);

	if (fd >= 0 && shmkit_seg_info(seg, &st) == 0) {
		for (size_t got = 0; got < n;) {
			ssize_t k = pread(fd, (char *)buf + got, n - got,
			                  (off_t)(st.data_offset + off + got));
			if (k < 0 && errno == EINTR)
				continue;
			if (k <= 0)
				return k < 0 ? -errno : -EFAULT;
			got += (size_t)k;
		}
		return 0;
	}
	return guarded_copy(buf, (const char *)shmkit_seg_data(seg) + off, n);
}

static int read_out(const char *name, shmkit_seg *seg, size_t off, size_t len, bool hex)
{
	static unsigned char buf[CHUNK];
	struct hexdump h = { .have_prev = false };

	for (size_t done = 0; done < len;) {
		size_t n = len - done < CHUNK ? len - done : CHUNK;
		if (read_bytes(seg, buf, off + done, n))
			return copy_fault(name);
		if (hex)
			hex_chunk(&h, off + done, buf, n);
		else if (fwrite(buf, 1, n, stdout) != n)
			return seg_fail(name, "writing to stdout: %s", strerror(errno));
		done += n;
	}
	if (hex)
		printf("%08zx\n", off + len);
	return 0;
}

/* read --json: {"name":NAME,"offset":N,"length":N,"data"|"hex":...}, the
 * range read whole first (bytes that are not UTF-8 come out as hex). */
static int read_json(const char *name, shmkit_seg *seg, size_t off, size_t len)
{
	unsigned char *buf = malloc(len ? len : 1);

	if (!buf)
		return tool_err(name, -ENOMEM);
	for (size_t done = 0; done < len;) {
		size_t n = len - done < CHUNK ? len - done : CHUNK;
		if (read_bytes(seg, buf + done, off + done, n)) {
			free(buf);
			return copy_fault(name);
		}
		done += n;
	}
	printf("{");
	tool_json_name("name", name);
	printf(",\"offset\":%zu,\"length\":%zu,", off, len);
	tool_json_data(buf, len);
	printf("}\n");
	free(buf);
	return 0;
}

static const char read_help[] =
	"usage: shmkit read NAME [--offset N] [--length N] [--hex] [--json]\n"
	"\n"
	"Copy bytes of a segment to stdout: of its data area when it is a shmkit\n"
	"segment, of the whole mapping when it is foreign.  Without --length, to\n"
	"the end.  A range past the end is an error and prints nothing.\n"
	"\n"
	"  --offset N   start N bytes in (K, M, G suffixes)\n"
	"  --length N   copy N bytes\n"
	"  --hex        print a hexdump -C style listing (offsets are the\n"
	"               segment's); repeated lines show as '*'\n"
	"  --json       print one JSON object: name, offset, length, and data (a\n"
	"               string) or hex when the bytes are not UTF-8 or hold a NUL\n";

int cmd_read(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "offset", required_argument, NULL, 'o' },
		{ "length", required_argument, NULL, 'l' },
		{ "hex", no_argument, NULL, 'x' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	size_t off = 0, len = 0;
	bool hex = false, have_len = false, json = false;
	int c, rc;

	while ((c = getopt_long(argc, argv, ":o:l:xjh", opts, NULL)) != -1) {
		switch (c) {
		case 'o':
			if ((rc = seg_parse_size("read", "--offset", optarg, &off)))
				return rc;
			break;
		case 'l':
			if ((rc = seg_parse_size("read", "--length", optarg, &len)))
				return rc;
			have_len = true;
			break;
		case 'x': hex = true; break;
		case 'j': json = true; break;
		case 'h': return seg_show_help(read_help);
		default: return tool_bad_option("read", c, argv);
		}
	}
	if (optind + 1 != argc)
		return tool_usage("read: give exactly one NAME (see shmkit read --help)");
	const char *name = argv[optind];
	shmkit_seg *seg;
	int err = open_bytes(name, SHMKIT_RDONLY, &seg);
	if (err)
		return tool_open_err(name, err);
	size_t size = shmkit_seg_size(seg);
	if (!have_len)
		len = off <= size ? size - off : 0;
	rc = check_range(name, size, off, len);
	if (!rc && json && hex)
		rc = tool_usage("read: --hex and --json: choose one");
	else if (!rc)
		rc = json ? read_json(name, seg, off, len) : read_out(name, seg, off, len, hex);
	shmkit_seg_close(seg);
	return rc;
}

/* Input for `write`: raw bytes, or hex digits decoded as they come. */
struct input {
	unsigned char *buf;
	size_t len, cap, limit;
	bool hex, half;
	unsigned nibble;
};

static int input_put(struct input *in, unsigned char b)
{
	if (in->len == in->limit)
		return -EFBIG;
	if (in->len == in->cap) {
		size_t cap = in->cap ? in->cap * 2 : CHUNK;
		unsigned char *p = realloc(in->buf, cap);
		if (!p)
			return -ENOMEM;
		in->buf = p;
		in->cap = cap;
	}
	in->buf[in->len++] = b;
	return 0;
}

static int input_hex(struct input *in, unsigned char ch)
{
	if (isspace(ch))
		return 0;
	if (!isxdigit(ch))
		return -EILSEQ;
	unsigned v = isdigit(ch) ? (unsigned)(ch - '0') : (unsigned)(tolower(ch) - 'a' + 10);
	if (!in->half) {
		in->nibble = v;
		in->half = true;
		return 0;
	}
	in->half = false;
	return input_put(in, (unsigned char)(in->nibble << 4 | v));
}

/* Read stdin until EOF into in->buf, at most in->limit bytes. */
static int input_read(struct input *in)
{
	static unsigned char chunk[CHUNK];

	for (;;) {
		ssize_t n = read(STDIN_FILENO, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return in->half ? -EILSEQ : 0;
		for (ssize_t i = 0; i < n; i++) {
			int err = in->hex ? input_hex(in, chunk[i]) : input_put(in, chunk[i]);
			if (err)
				return err;
		}
	}
}

static int input_error(const char *name, const struct input *in, int err, size_t off)
{
	if (err == -EFBIG)
		return seg_fail(name, "input is longer than the %zu bytes from offset %zu to the end; "
		                "nothing written", in->limit, off);
	if (err == -EILSEQ)
		return seg_fail(name, "--hex input must be pairs of hex digits (whitespace ignored); "
		                "nothing written");
	return seg_fail(name, "reading stdin: %s; nothing written", strerror(-err));
}

static const char write_help[] =
	"usage: shmkit write NAME [--offset N] [--hex] [--raw]\n"
	"\n"
	"Copy stdin into a segment: into its data area when it is a shmkit byte\n"
	"segment, into the whole mapping when it is foreign.  All of stdin is read\n"
	"first; if it does not fit between the offset and the end nothing is\n"
	"written and the exit status is 1.  A file: segment is synced (msync)\n"
	"before exit.  A channel, a bus, a journal's file, or a shmkit header\n"
	"this build does not accept is refused with exit 1: writing would\n"
	"overwrite its control block.\n"
	"\n"
	"  --offset N   start N bytes in (K, M, G suffixes)\n"
	"  --hex        stdin is hex digits, two per byte, whitespace ignored\n"
	"               (as printed by xxd -p)\n"
	"  --raw        write into a channel's, bus's or journal's memory anyway,\n"
	"               at the same place: the data area after a shmkit header,\n"
	"               else the whole mapping\n";

/* 0 if seg holds plain bytes (a byte segment, or a foreign one that is no
 * journal file nor an unreadable shmkit header), else why not, reported. */
static int write_check(const char *name, shmkit_seg *seg)
{
	int kind = shmkit_seg_kind(seg);
	unsigned char head[8];
	const char *what = NULL;

	if (kind == SHMKIT_KIND_FOREIGN && shmkit_seg_size(seg) >= sizeof(head) &&
	    !guarded_copy(head, shmkit_seg_data(seg), sizeof(head)))
		what = seg_format_of(seg_magic_of(head));
	if (kind == SHMKIT_KIND_BYTES || (kind == SHMKIT_KIND_FOREIGN && !what))
		return 0;
	return seg_fail(name, "is a %s%s, not plain bytes: writing would overwrite its control "
	                "block; nothing written (--raw writes anyway)", what ? what : seg_kind_label(kind),
	                what ? "" : " segment");
}

int cmd_write(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "offset", required_argument, NULL, 'o' },
		{ "hex", no_argument, NULL, 'x' },
		{ "raw", no_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct input in = { .hex = false };
	size_t off = 0;
	bool raw = false;
	int c, rc;

	while ((c = getopt_long(argc, argv, ":o:xrh", opts, NULL)) != -1) {
		switch (c) {
		case 'o':
			if ((rc = seg_parse_size("write", "--offset", optarg, &off)))
				return rc;
			break;
		case 'x': in.hex = true; break;
		case 'r': raw = true; break;
		case 'h': return seg_show_help(write_help);
		default: return tool_bad_option("write", c, argv);
		}
	}
	if (optind + 1 != argc)
		return tool_usage("write: give exactly one NAME (see shmkit write --help)");
	const char *name = argv[optind];
	shmkit_seg *seg;
	int err = open_bytes(name, 0, &seg);
	if (err)
		return tool_open_err(name, err);
	size_t size = shmkit_seg_size(seg);
	if ((!raw && (rc = write_check(name, seg))) || (rc = check_range(name, size, off, 0)))
		goto out;
	in.limit = size - off;
	if ((err = input_read(&in))) {
		rc = input_error(name, &in, err, off);
		goto out;
	}
	if (in.len && guarded_copy((char *)shmkit_seg_data(seg) + off, in.buf, in.len))
		rc = copy_fault(name);
	else if (in.len && (err = shmkit_seg_sync(seg, off, in.len, 0)))
		rc = tool_err(name, err);
out:
	free(in.buf);
	shmkit_seg_close(seg);
	return rc;
}
