/*
 * cpeer.c - a C program on the public API (not the tool) that the Python
 * tests run on the other side of a channel, a bus, an rpc service, a
 * journal and a segment (test_cpeer.py compiles it against the build's
 * libshmkit.a).  Messages are arrays of uint64 words as numpy writes
 * them: message i (from 1) holds `words` words, word k = i * 1000 + k.
 * Every mode checks every word it reads and prints one line of result;
 * exit status 1 with a message on stderr on any error or wrong word.
 *
 *   cpeer recv NAME N WORDS     channel: receive N arrays in place (peek)
 *   cpeer send NAME N WORDS     channel: send N arrays written in reservations
 *   cpeer pub NAME N WORDS      bus: N arrays written in loans, after the
 *                               first subscriber joined
 *   cpeer serve NAME N          rpc: answer N requests (arrays of any length)
 *                               with each word + 1, written in a response loan
 *   cpeer append PATH N WORDS   journal: append N arrays
 *   cpeer segsum NAME           segment: print the sum of its uint64 words,
 *                               then write word k = k * 3 into it
 */
#include "shmkit.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WAIT_NS 10000000000LL  /* every wait: 10 s, never reached in a pass */

static int fail(const char *what, int rc)
{
	fprintf(stderr, "cpeer: %s: %s\n", what, rc < 0 ? shmkit_strerror(rc) : "wrong data");
	exit(1);
}

static void fill(uint64_t *w, uint64_t i, unsigned words)
{
	for (unsigned k = 0; k < words; k++)
		w[k] = i * 1000 + k;
}

static void check(const void *buf, size_t len, uint64_t i, unsigned words)
{
	uint64_t w;

	if (len != (size_t)words * 8)
		fail("length", 0);
	for (unsigned k = 0; k < words; k++) {
		memcpy(&w, (const char *)buf + 8 * k, 8);
		if (w != i * 1000 + k)
			fail("word", 0);
	}
}

static int chan_mode(const char *name, uint64_t n, unsigned words, int recv)
{
	struct shmkit_chan_opts o = {0};
	shmkit_chan *ch;
	int rc;

	if ((rc = shmkit_chan_open(&ch, name, &o)) < 0)
		fail("chan_open", rc);
	for (uint64_t i = 1; i <= n; i++) {
		if (recv) {
			const void *buf;
			ssize_t len = shmkit_chan_peek(ch, &buf, WAIT_NS);
			if (len < 0)
				fail("chan_peek", (int)len);
			check(buf, (size_t)len, i, words);
			rc = shmkit_chan_release(ch);
		} else {
			void *buf;
			if ((rc = shmkit_chan_reserve(ch, &buf, WAIT_NS)) < 0)
				fail("chan_reserve", rc);
			fill(buf, i, words);
			rc = shmkit_chan_commit(ch, (size_t)words * 8);
		}
		if (rc < 0)
			fail(recv ? "chan_release" : "chan_commit", rc);
	}
	printf("%s %llu\n", recv ? "received" : "sent", (unsigned long long)n);
	return shmkit_chan_close(ch);
}

static int pub_mode(const char *name, uint64_t n, unsigned words)
{
	struct shmkit_bus_opts o = {0};
	struct shmkit_bus_stats st;
	shmkit_bus *bus;
	void *buf;
	int rc;

	if ((rc = shmkit_bus_open(&bus, name, &o)) < 0)
		fail("bus_open", rc);
	/* The Python side subscribes before it starts this program. */
	if ((rc = shmkit_bus_stats(bus, &st)) < 0 || st.subscribers < 1)
		fail("no subscriber", rc);
	for (uint64_t i = 1; i <= n; i++) {
		if ((rc = shmkit_bus_loan(bus, &buf, WAIT_NS)) < 0)
			fail("bus_loan", rc);
		fill(buf, i, words);
		if ((rc = shmkit_bus_publish_loan(bus, (size_t)words * 8)) < 0)
			fail("bus_publish_loan", rc);
	}
	printf("published %llu\n", (unsigned long long)n);
	return shmkit_bus_close(bus);
}

static int serve_mode(const char *name, uint64_t n)
{
	struct shmkit_rpc_opts o = {0};
	struct shmkit_rpc_req req;
	shmkit_rpc *r;
	void *buf;
	int rc;

	if ((rc = shmkit_rpc_open(&r, name, &o)) < 0)
		fail("rpc_open", rc);
	for (uint64_t i = 0; i < n; i++) {
		if ((rc = shmkit_rpc_recv(r, &req, WAIT_NS)) < 0)
			fail("rpc_recv", rc);
		if (req.len % 8)
			fail("request length", 0);
		if ((rc = shmkit_rpc_respond_loan(r, &req, &buf)) < 0)
			fail("rpc_respond_loan", rc);
		for (uint32_t k = 0; k < req.len / 8; k++) {
			uint64_t w;
			memcpy(&w, (const char *)req.data + 8 * k, 8);
			((uint64_t *)buf)[k] = w + 1;
		}
		if ((rc = shmkit_rpc_respond_commit(r, &req, req.len)) < 0)
			fail("rpc_respond_commit", rc);
	}
	printf("served %llu\n", (unsigned long long)n);
	return shmkit_rpc_close(r);
}

static int append_mode(const char *path, uint64_t n, unsigned words)
{
	struct shmkit_journal_opts o = {.flags = SHMKIT_JOURNAL_WRITE};
	shmkit_journal *j;
	uint64_t w[512], seq;
	int rc;

	if (words > 512)
		fail("words", 0);
	if ((rc = shmkit_journal_open(&j, path, &o)) < 0)
		fail("journal_open", rc);
	for (uint64_t i = 1; i <= n; i++) {
		fill(w, i, words);
		if ((rc = shmkit_journal_append(j, w, (size_t)words * 8, &seq)) < 0)
			fail("journal_append", rc);
	}
	printf("appended %llu last %llu\n", (unsigned long long)n, (unsigned long long)seq);
	return shmkit_journal_close(j);
}

static int segsum_mode(const char *name)
{
	struct shmkit_seg_opts o = {0};
	shmkit_seg *seg;
	uint64_t *w, sum = 0;
	size_t words;
	int rc;

	if ((rc = shmkit_seg_open(&seg, name, &o)) < 0)
		fail("seg_open", rc);
	w = shmkit_seg_data(seg);
	words = shmkit_seg_size(seg) / 8;
	for (size_t k = 0; k < words; k++)
		sum += w[k];
	for (size_t k = 0; k < words; k++)
		w[k] = k * 3;
	printf("sum %llu\n", (unsigned long long)sum);
	return shmkit_seg_close(seg);
}

int main(int argc, char **argv)
{
	const char *m = argc > 2 ? argv[1] : "";
	uint64_t n = argc > 3 ? strtoull(argv[3], NULL, 10) : 0;
	unsigned words = argc > 4 ? (unsigned)strtoul(argv[4], NULL, 10) : 0;
	int rc;

	if (!strcmp(m, "recv") || !strcmp(m, "send"))
		rc = chan_mode(argv[2], n, words, !strcmp(m, "recv"));
	else if (!strcmp(m, "pub"))
		rc = pub_mode(argv[2], n, words);
	else if (!strcmp(m, "serve"))
		rc = serve_mode(argv[2], n);
	else if (!strcmp(m, "append"))
		rc = append_mode(argv[2], n, words);
	else if (!strcmp(m, "segsum"))
		rc = segsum_mode(argv[2]);
	else {
		fprintf(stderr, "usage: see cpeer.c\n");
		return 2;
	}
	if (rc < 0)
		fail("close", rc);
	return fflush(stdout) == 0 ? 0 : 1;
}
