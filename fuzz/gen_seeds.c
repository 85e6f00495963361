/*
 * gen_seeds.c - writes the seed corpora of fuzz/corpus/TARGET/ from real
 * objects in valid states: headers, channels and buses made and driven by
 * the library, their bytes dumped in the input format of each target
 * (fuzz_common.h and the comment at the top of each fuzz_*.c), followed by
 * an operation script that touches every operation.  Deterministic but for
 * the ids and times the library writes.  `make fuzz-seeds`.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz_common.h"
#include "shmkit.h"

#define SK_FZ_N(a) (sizeof(a) / sizeof((a)[0]))

static const char *root;

static void put(const char *target, const char *tag, const void *a, size_t an,
                const void *b, size_t bn)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", root, target);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/%s/seed-%s", root, target, tag);
	FILE *f = fopen(path, "wb");
	if (!f || fwrite(a, 1, an, f) != an || (bn && fwrite(b, 1, bn, f) != bn) || fclose(f)) {
		fprintf(stderr, "gen_seeds: cannot write %s\n", path);
		exit(1);
	}
}

/* ---- fuzz_parse ------------------------------------------------------- */

static void seeds_parse(void)
{
	static const char *const names[] = {
		"x", "posix:/x", "/x", "sysv:0x1234", "sysv:42", "sysv:id=7", "sysv:/tmp:1",
		"file:/tmp/sktest-x", "anon", "memfd:x", "weird:x", "a/b", "posix:/..",
	};
	static const char *const sizes[] = { "4096", "4K", "1M", "2GiB", "1KB", "0", "18446744073709551615" };
	static const char *const ms[] = { "-1", "0", "100", "9223372036854" };
	static const char *const modes[] = { "600", "0644", "7777", "8" };
	static const char *const text[] = { "plain", "tab\there", "\x1b[31mred", "caf\xc3\xa9", "\xff\xfe" };
	char buf[64], tag[16];
	size_t i;

	for (i = 0; i < SK_FZ_N(names); i++) {
		snprintf(tag, sizeof(tag), "name%zu", i);
		put("fuzz_parse", tag, "\0", 1, names[i], strlen(names[i]));
	}
	for (i = 0; i < SK_FZ_N(sizes); i++) {
		snprintf(tag, sizeof(tag), "size%zu", i);
		put("fuzz_parse", tag, "\1", 1, sizes[i], strlen(sizes[i]));
	}
	for (i = 0; i < SK_FZ_N(ms); i++) {
		snprintf(tag, sizeof(tag), "ms%zu", i);
		put("fuzz_parse", tag, "\2", 1, ms[i], strlen(ms[i]));
	}
	for (i = 0; i < SK_FZ_N(modes); i++) {
		snprintf(tag, sizeof(tag), "mode%zu", i);
		put("fuzz_parse", tag, "\3", 1, modes[i], strlen(modes[i]));
	}
	for (i = 0; i < SK_FZ_N(text); i++) {
		snprintf(tag, sizeof(tag), "esc%zu", i);
		buf[0] = (char)(4 + 6 * (3 + 2 * i)); /* selector 4, buffer length */
		put("fuzz_parse", tag, buf, 1, text[i], strlen(text[i]));
		snprintf(tag, sizeof(tag), "json%zu", i);
		put("fuzz_parse", tag, "\5", 1, text[i], strlen(text[i]));
	}
}

/* ---- images of live objects ------------------------------------------- */

/* cfg bytes, image length, image (the raw data area of name), script. */
static void put_image(const char *target, const char *tag, const uint8_t *cfg, size_t ncfg,
                      const char *name, size_t len, const uint8_t *ops, size_t nops)
{
	unsigned char *data;
	size_t size;
	shmkit_seg *raw = fz_raw_open(name, &data, &size);
	uint8_t *buf = malloc(ncfg + 2 + len + nops);

	if (len > size)
		len = size;
	memcpy(buf, cfg, ncfg);
	buf[ncfg] = (uint8_t)len;
	buf[ncfg + 1] = (uint8_t)(len >> 8);
	memcpy(buf + ncfg + 2, data, len);
	put(target, tag, buf, ncfg + 2 + len, ops, nops);
	free(buf);
	shmkit_seg_close(raw);
}

/* Channel: ops are (op | handle << 5); see fuzz_chan.c. */
enum { C_SEND, C_RECV, C_RESERVE, C_COMMIT, C_ABORT, C_PEEK, C_RELEASE, C_FD, C_ACK, C_STATS,
       C_PATCH, C_REOPEN, C_CLOSE };

static void seeds_chan(void)
{
	static const uint8_t ops[] = {
		C_SEND, 8, C_SEND | 32, 3, C_RECV | 32, 64, C_PEEK, C_RELEASE, C_RESERVE | 32,
		C_COMMIT | 32, 5, C_RESERVE, C_ABORT, C_FD, 0, C_ACK, C_FD | 32, 1, C_ACK | 32,
		C_STATS, C_STATS | 32, C_SEND | 0xc0, 200, C_RECV | 0xc0, 0, C_PEEK | 32,
		C_RECV | 32, 64, C_REOPEN | 32, C_SEND | 32, 1, C_RECV, 64, C_CLOSE, C_REOPEN,
		C_RECV | 32, 64,
	};
	for (int spsc = 0; spsc < 2; spsc++) {
		for (int state = 0; state < 5; state++) {
			uint8_t cfg[2] = { (uint8_t)(spsc | 2 << 1 | (state & 1) << 3), 15 }; /* cap 4, max 16 */
			struct shmkit_chan_opts o = { .capacity = 4, .max_msg = 16,
			                              .flags = SHMKIT_EXCL | (spsc ? SHMKIT_CHAN_SPSC : 0) };
			const char *name = fz_name("chan");
			char nm[128], tag[32], msg[16] = "hello";
			shmkit_chan *ch;
			void *buf;
			const void *p;

			snprintf(nm, sizeof(nm), "%s", name);
			if (shmkit_chan_create(&ch, nm, &o))
				exit(1);
			for (int i = 0; i < state + 1; i++)
				shmkit_chan_send(ch, msg, (size_t)(i * 3) % 17, 0);
			if (state >= 2)
				shmkit_chan_recv(ch, msg, sizeof(msg), 0);
			if (state == 3)
				shmkit_chan_reserve(ch, &buf, 0); /* a claim held */
			if (state == 4)
				shmkit_chan_peek(ch, &p, 0);
			snprintf(tag, sizeof(tag), "%s-%d", spsc ? "spsc" : "mpmc", state);
			put_image("fuzz_chan", tag, cfg, 2, nm, 65535, ops, sizeof(ops)); /* all of it */
			shmkit_chan_close(ch);
			shmkit_seg_remove(nm);
		}
	}
}

/* Bus: ops are (op | handle << 4 | sub << 5); see fuzz_bus.c. */
enum { B_PUB, B_LOAN, B_PUB_LOAN, B_ABORT_LOAN, B_SUB, B_UNSUB, B_RECV, B_PEEK, B_RELEASE,
       B_FD, B_ACK, B_STATS, B_PEERS, B_PATCH, B_REOPEN };

static void seeds_bus(void)
{
	static const uint8_t ops[] = {
		B_SUB, 1, B_SUB | 16 | 32, 0, B_PUB, 8, B_PUB | 16, 3, B_RECV, 64, B_RECV | 32, 64,
		B_PEEK, B_RELEASE, B_PEEK | 32, B_RELEASE | 32, B_LOAN | 16, B_PUB_LOAN | 16, 5,
		B_LOAN, B_ABORT_LOAN, B_FD, B_ACK, B_FD | 32, B_ACK | 32, B_STATS, B_PEERS | 16,
		B_PUB, 16, B_PUB, 2, B_PUB, 3, B_PUB, 4, B_PUB, 5, B_RECV | 64, 64, B_RECV, 64,
		B_UNSUB | 32, B_REOPEN | 16, B_SUB | 16 | 64, 1, B_RECV | 64, 64, B_PEERS,
	};
	for (int bp = 0; bp < 2; bp++) {
		for (int state = 0; state < 4; state++) {
			/* cap 4, 2 subscribers, 2 publishers, geometry kept on odd states */
			uint8_t cfg[3] = { (uint8_t)(bp | 2 << 1 | 1 << 3 | 1 << 5 | (state & 1) << 7), 15,
			                   (uint8_t)(state % 3) };
			struct shmkit_bus_opts o = { .capacity = 4, .max_msg = 16, .delivery = bp,
			                             .max_subscribers = 2, .max_publishers = 2,
			                             .flags = SHMKIT_EXCL, .from = SHMKIT_FROM_OLDEST };
			char nm[128], tag[32], msg[16] = "hello";
			shmkit_bus *b;
			shmkit_sub *sub = NULL;
			void *buf;

			snprintf(nm, sizeof(nm), "%s", fz_name("bus"));
			if (shmkit_bus_create(&b, nm, &o) || shmkit_bus_subscribe(&sub, b, &o))
				exit(1);
			for (int i = 0; i < state * 2 + 1; i++)
				shmkit_bus_publish(b, msg, (size_t)i % 17, 0);
			if (state >= 2)
				shmkit_sub_recv(sub, msg, sizeof(msg), NULL, 0);
			if (state == 3)
				shmkit_bus_loan(b, &buf, 0); /* a loan held */
			snprintf(tag, sizeof(tag), "%s-%d", bp ? "bp" : "ow", state);
			/* 448 + 2 * 64 + 2 * 64 + 4 * 64 */
			put_image("fuzz_bus", tag, cfg, 3, nm, 960, ops, sizeof(ops));
			shmkit_bus_unsubscribe(sub);
			shmkit_bus_close(b);
			shmkit_seg_remove(nm);
		}
	}
}

/* Segment header: a header page and the start of the data area of each
 * kind, as made and with the object cut to each size. */
static void seeds_header(void)
{
	for (int kind = 0; kind < 3; kind++) {
		for (int sz = 0; sz < 3; sz++) {
			uint8_t cfg[2] = { (uint8_t)kind, (uint8_t)(sz ? 3 + sz * 2 : 0) };
			char nm[128], tag[32];
			struct shmkit_seg_opts so = { .size = 4096, .flags = SHMKIT_EXCL };
			struct shmkit_chan_opts co = { .capacity = 2, .max_msg = 16, .flags = SHMKIT_EXCL };
			struct shmkit_bus_opts bo = { .capacity = 2, .max_msg = 16, .flags = SHMKIT_EXCL,
			                              .max_subscribers = 1, .max_publishers = 1 };
			shmkit_seg *s;
			shmkit_chan *ch;
			shmkit_bus *b;
			int err = -1;

			snprintf(nm, sizeof(nm), "%s", fz_name("hdr"));
			if (kind == 0 && !(err = shmkit_seg_create(&s, nm, &so)))
				shmkit_seg_close(s);
			if (kind == 1 && !(err = shmkit_chan_create(&ch, nm, &co)))
				shmkit_chan_close(ch);
			if (kind == 2 && !(err = shmkit_bus_create(&b, nm, &bo)))
				shmkit_bus_close(b);
			if (err)
				exit(1);
			/* The image starts at the header: open raw, back up 4096. */
			unsigned char *data;
			size_t size;
			shmkit_seg *raw = fz_raw_open(nm, &data, &size);
			size_t len = 4096 + 512;
			uint8_t *buf = malloc(4 + len);
			memcpy(buf, cfg, 2);
			buf[2] = (uint8_t)len;
			buf[3] = (uint8_t)(len >> 8);
			memcpy(buf + 4, data - 4096, len);
			snprintf(tag, sizeof(tag), "kind%d-size%d", kind, sz);
			put("fuzz_seg_header", tag, buf, 4 + len, NULL, 0);
			free(buf);
			shmkit_seg_close(raw);
			shmkit_seg_remove(nm);
		}
	}
}

/* Journal: scripts over a real journal (the state is made by appends);
 * opcodes as in fuzz_journal_files.c. */
enum { J_PATCH, J_TRUNC, J_GROW, J_EMPTY, J_UNLINK, J_STRAY, J_HUGE_LEN, J_APPEND, J_CLOSE,
       J_READ, J_SEEK, J_STAT, J_VERIFY, J_REPAIR };

static void seeds_journal(void)
{
	static const uint8_t s0[] = { 0x05, 10, J_READ, 0, J_VERIFY, J_STAT, 0, J_APPEND, 9,
	                              J_SEEK, 7, J_SEEK, 2, J_CLOSE, J_REPAIR, J_READ, 0 };
	static const uint8_t s1[] = { 0x00, 30, J_PATCH, 0, 80, 0, 4, 1, 2, 3, 4, J_VERIFY,
	                              J_READ, 0, J_REPAIR, J_READ, 0, J_APPEND, 3 };
	static const uint8_t s2[] = { 0x04, 40, J_TRUNC, 1, 0, 1, J_READ, 0, J_APPEND, 5,
	                              J_VERIFY, J_REPAIR, J_VERIFY, J_READ, 0 };
	static const uint8_t s3[] = { 0x01, 20, J_HUGE_LEN, 0, 64, 0, 1, J_READ, 0, J_VERIFY,
	                              J_REPAIR, J_READ, 0, J_APPEND, 1 };
	static const uint8_t s4[] = { 0x02, 25, J_UNLINK, 200, 0, 0, J_VERIFY, J_REPAIR,
	                              J_READ, 0, J_STAT, 0 };
	static const uint8_t s5[] = { 0x00, 45, J_EMPTY, 1, 0, 0, J_STRAY, 8, 3, 0, 1, 2, 3, 4,
	                              5, 6, 7, 8, J_GROW, 0, 16, 0, J_VERIFY, J_REPAIR, J_READ, 0 };
	static const uint8_t s6[] = { 0x0d, 12, J_PATCH, 0, 136, 0, 8, 0xff, 0xff, 0xff, 0x7f,
	                              0, 0, 0, 0, J_APPEND, 4, J_READ, 0, J_PATCH, 255, 128, 0,
	                              8, 1, 0, 0, 0, 9, 0, 0, 0, J_APPEND, 4, J_SEEK, 1 };
	static const struct { const uint8_t *p; size_t n; } all[] = {
		{ s0, sizeof(s0) }, { s1, sizeof(s1) }, { s2, sizeof(s2) }, { s3, sizeof(s3) },
		{ s4, sizeof(s4) }, { s5, sizeof(s5) }, { s6, sizeof(s6) },
	};
	char tag[16];

	for (size_t i = 0; i < SK_FZ_N(all); i++) {
		snprintf(tag, sizeof(tag), "script%zu", i);
		put("fuzz_journal_files", tag, all[i].p, all[i].n, NULL, 0);
	}
}

/* Journal live state: opcodes as in fuzz_journal_shm.c. */
enum { S_APPEND, S_NEXT, S_PATCH_META, S_PATCH_DATA, S_FD, S_SEEK, S_STAT, S_SYNC,
       S_REOPEN_READER, S_REOPEN_WRITER };

static void seeds_journal_shm(void)
{
	static const uint8_t s0[] = { 0x05, 10, S_NEXT, 15, S_APPEND, 9, S_FD, S_NEXT, 0x83,
	                              S_STAT, S_SYNC, S_SEEK, 3, S_NEXT, 4, S_REOPEN_WRITER,
	                              S_APPEND, 4, S_REOPEN_READER, S_NEXT, 15 };
	static const uint8_t s1[] = { 0x00, 20, S_NEXT, 3, S_PATCH_META, 128, 0, 8, 0xff, 0xff,
	                              0xff, 0x7f, 0xff, 0xff, 0xff, 0xff, S_APPEND, 5, S_NEXT,
	                              0x8f, S_FD, S_REOPEN_READER, S_NEXT, 15 };
	static const uint8_t s2[] = { 0x04, 40, S_NEXT, 15, S_PATCH_DATA, 64, 0, 4, 0xff, 0xff,
	                              0xff, 0xbf, S_NEXT, 15, S_APPEND, 2, S_REOPEN_WRITER,
	                              S_APPEND, 2, S_NEXT, 15, S_SEEK, 1, S_NEXT, 15 };
	static const uint8_t s3[] = { 0x01, 5, S_PATCH_META, 64, 0, 24, 1, 0, 0, 0, 2, 0, 0, 0,
	                              0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0,
	                              S_STAT, S_APPEND, 30, S_APPEND, 30, S_NEXT, 15 };
	static const struct { const uint8_t *p; size_t n; } all[] = {
		{ s0, sizeof(s0) }, { s1, sizeof(s1) }, { s2, sizeof(s2) }, { s3, sizeof(s3) },
	};
	char tag[16];

	for (size_t i = 0; i < SK_FZ_N(all); i++) {
		snprintf(tag, sizeof(tag), "script%zu", i);
		put("fuzz_journal_shm", tag, all[i].p, all[i].n, NULL, 0);
	}
}

/* rpc: ops are (op | handle << 5 | slot << 6); see fuzz_rpc.c. */
enum { R_SEND, R_CALL, R_LOAN, R_SEND_LOAN, R_ABORT_LOAN, R_WAIT, R_RELEASE, R_STATUS,
       R_CANCEL, R_RECV, R_RESPOND, R_RESPOND_STATUS, R_RESPOND_LOAN, R_ABANDONED, R_FD,
       R_ACK, R_STATS, R_PEERS, R_PATCH, R_REOPEN };

static void seeds_rpc(void)
{
	static const uint8_t ops[] = {
		R_SEND, 8, 0, R_SEND | 64, 3, 1, R_RECV | 32, R_ABANDONED | 32, R_RESPOND | 32, 5,
		R_WAIT, R_STATUS, R_RELEASE, R_RECV | 32 | 64, R_RESPOND_LOAN | 32 | 64, 7,
		R_WAIT | 192, R_RELEASE | 64, R_LOAN, R_SEND_LOAN, 4, R_RECV, R_RESPOND_STATUS, 2, 3,
		R_WAIT, R_RELEASE, R_SEND, 1, 0, R_CANCEL, R_CALL | 32, 64, 4, R_FD, 0, R_ACK,
		R_FD | 32, 1, R_ACK | 32, R_STATS, R_PEERS | 32, R_REOPEN | 32, R_RECV | 32,
	};
	for (int state = 0; state < 4; state++) {
		/* 2 clients, depth 2, 2 servers, max 16 each; geometry kept on odd */
		uint8_t cfg[3] = { (uint8_t)(1 | 1 << 1 | 1 << 3 | (state & 1) << 7), 15, 15 };
		struct shmkit_rpc_opts o = { .max_clients = 2, .depth = 2, .max_servers = 2,
		                             .max_request = 16, .max_response = 16,
		                             .flags = SHMKIT_EXCL };
		char nm[128], tag[32], msg[16] = "hello";
		shmkit_rpc *c, *sv;
		struct shmkit_rpc_req q;
		uint64_t id;

		snprintf(nm, sizeof(nm), "%s", fz_name("rpc"));
		if (shmkit_rpc_create(&c, nm, &o) || shmkit_rpc_open(&sv, nm, NULL)) {
			fprintf(stderr, "gen_seeds: rpc %s: %s\n", nm, shmkit_errdetail());
			exit(1);
		}
		for (int i = 0; i < state && i < 2; i++)
			shmkit_rpc_send(c, msg, 5, 0, 1000000000LL, &id);
		if (state >= 2 && shmkit_rpc_recv(sv, &q, 0) == 0 && state == 3)
			shmkit_rpc_respond(sv, &q, msg, 3);
		snprintf(tag, sizeof(tag), "rpc-%d", state);
		put_image("fuzz_rpc", tag, cfg, 3, nm, 4096, ops, sizeof(ops));
		shmkit_rpc_close(sv);
		shmkit_rpc_close(c);
		shmkit_seg_remove(nm);
	}
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: gen_seeds CORPUS_DIR\n");
		return 2;
	}
	root = argv[1];
	mkdir(root, 0755);
	fz_init();
	seeds_parse();
	seeds_header();
	seeds_chan();
	seeds_bus();
	seeds_journal();
	seeds_journal_shm();
	seeds_rpc();
	return 0;
}
