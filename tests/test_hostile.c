/*
 * test_hostile.c - values a peer (dead, buggy or hostile) leaves in shared
 * memory, and odd but legal arguments: each gets an error that names its
 * cause, never a crash, undefined behaviour or a deaf reader.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "lib_test.h"
#include "shmkit.h"

#define SEC 1000000000LL

TestSuite(hostile, .timeout = 60, .fini = sk_test_cleanup);

/* Empty messages with NULL buffers are legal: no memcpy(NULL, ..., 0)
 * (undefined behaviour the sanitizer run catches). */
Test(hostile, empty_messages_with_null_buffers)
{
	const char *cn = sk_test_new_name("posix"), *bn = sk_test_new_name("posix");
	struct shmkit_chan_opts co = { .capacity = 4, .max_msg = 64, .flags = SHMKIT_EXCL };
	struct shmkit_bus_opts bo = { .capacity = 4, .max_msg = 64, .flags = SHMKIT_EXCL };
	shmkit_chan *ch;
	shmkit_bus *b;
	shmkit_sub *sub;

	cr_assert_eq(shmkit_chan_create(&ch, cn, &co), 0);
	cr_expect_eq(shmkit_chan_send(ch, NULL, 0, 0), 0);
	cr_expect_eq(shmkit_chan_recv(ch, NULL, 0, 0), 0);
	shmkit_chan_close(ch);
	cr_assert_eq(shmkit_bus_create(&b, bn, &bo), 0);
	cr_assert_eq(shmkit_bus_subscribe(&sub, b, NULL), 0);
	cr_expect_eq(shmkit_bus_publish(b, NULL, 0, 0), 0);
	cr_expect_eq(shmkit_sub_recv(sub, NULL, 0, NULL, 0), 0);
	shmkit_bus_unsubscribe(sub);
	shmkit_bus_close(b);
}

/* A channel whose magic was overwritten: "not a channel", not a version
 * mismatch that names the very version this build reads. */
Test(hostile, channel_with_bad_magic_says_so)
{
	const char *name = sk_test_new_name("posix");
	struct shmkit_chan_opts co = { .capacity = 4, .max_msg = 64, .flags = SHMKIT_EXCL };
	shmkit_chan *ch;
	shmkit_seg *raw;

	cr_assert_eq(shmkit_chan_create(&ch, name, &co), 0);
	shmkit_chan_close(ch);
	cr_assert_eq(shmkit_seg_open(&raw, name, &(struct shmkit_seg_opts){ .flags = SHMKIT_RAW }), 0);
	memset((char *)shmkit_seg_data(raw) + 4096, 0x5a, 8); /* the channel's magic */
	shmkit_seg_close(raw);
	int err = shmkit_chan_open(&ch, name, NULL);
	cr_expect_eq(err, -EPROTO);
	cr_expect(strstr(shmkit_errdetail(), "bad magic"), "%s", shmkit_errdetail());
}

/* A forged slot word on a bus (a sequence that does not map to its slot,
 * with head below the capacity): the subscriber reports -EBADMSG, rather
 * than underflowing into a position of 2^64 - 1 and going deaf. */
Test(hostile, forged_bus_slot_word_is_ebadmsg)
{
	const char *name = sk_test_new_name("posix");
	struct shmkit_bus_opts bo = { .capacity = 8, .max_msg = 64, .flags = SHMKIT_EXCL,
	                              .from = SHMKIT_FROM_OLDEST };
	shmkit_bus *b;
	shmkit_sub *sub;
	char buf[64];

	cr_assert_eq(shmkit_bus_create(&b, name, &bo), 0);
	cr_assert_eq(shmkit_bus_subscribe(&sub, b, &bo), 0);
	shmkit_seg *raw;
	cr_assert_eq(shmkit_seg_open(&raw, name, &(struct shmkit_seg_opts){ .flags = SHMKIT_RAW }), 0);
	unsigned char *d = (unsigned char *)shmkit_seg_data(raw) + 4096; /* the bus's data area */
	uint64_t slots_off, head = 6, word = (uint64_t)5 << 13 | 2; /* MSG of seq 5 in slot 0 */
	memcpy(&slots_off, d + 64, 8);                           /* sk_bus_geom.slots_off */
	cr_assert_lt(slots_off, 1u << 20);
	__atomic_store_n((uint64_t *)(void *)(d + slots_off), word, __ATOMIC_RELEASE);
	__atomic_store_n((uint64_t *)(void *)(d + 128), head, __ATOMIC_RELEASE); /* head */
	ssize_t n = shmkit_sub_recv(sub, buf, sizeof(buf), NULL, 0);
	cr_expect_eq(n, -EBADMSG, "got %zd (%s)", n, shmkit_errdetail());
	shmkit_seg_close(raw);
	shmkit_bus_unsubscribe(sub);
	shmkit_bus_close(b);
}

/* Errors that name their cause: closing a bus with this handle's own
 * subscriptions open is not "held by another live process". */
Test(hostile, busy_text_names_this_handle_too)
{
	const char *name = sk_test_new_name("posix");
	struct shmkit_bus_opts bo = { .capacity = 4, .max_msg = 64, .flags = SHMKIT_EXCL };
	shmkit_bus *b;
	shmkit_sub *sub;

	cr_assert_eq(shmkit_bus_create(&b, name, &bo), 0);
	cr_assert_eq(shmkit_bus_subscribe(&sub, b, NULL), 0);
	cr_expect_eq(shmkit_bus_close(b), -EBUSY);
	cr_expect(strstr(shmkit_errdetail(), "this handle"), "%s", shmkit_errdetail());
	cr_expect(strstr(shmkit_strerror(-EBUSY), "handle"), "%s", shmkit_strerror(-EBUSY));
	shmkit_bus_unsubscribe(sub);
	shmkit_bus_close(b);
}

/* A size the machine cannot hold is refused before anything is reserved:
 * a 64 TiB memfd once ran posix_fallocate on shared memory until the OOM
 * killer took unrelated processes.  (Do not run this against a build
 * without the check: that is what it did.)  Nothing is left behind. */
Test(hostile, sizes_beyond_memory_are_refused_up_front)
{
	const char *pn = sk_test_new_name("posix");
	struct shmkit_seg_opts o = { .size = (size_t)1 << 46, .flags = SHMKIT_EXCL };
	shmkit_seg *s = NULL;

	int err = shmkit_seg_create(&s, "memfd:sktest-huge", &o);
	cr_expect_eq(err, -ENOMEM, "memfd: %d (%s)", err, shmkit_errdetail());
	cr_expect_null(s);
	err = shmkit_seg_create(&s, pn, &o);
	cr_expect(err == -ENOSPC || err == -ENOMEM, "posix: %d (%s)", err, shmkit_errdetail());
	cr_expect_null(s);
	cr_expect_eq(sk_test_exists(pn), 0, "a refused create leaves no name");
}

/* A header whose data offset is in bounds but not page-aligned (every
 * futex word and atomic in the data area would be misaligned): -EBADMSG
 * at open, saying why. */
Test(hostile, misaligned_data_offset_is_ebadmsg)
{
	const char *name = sk_test_new_name("posix");
	struct shmkit_seg_opts o = { .size = 4096, .flags = SHMKIT_EXCL };
	shmkit_seg *s, *raw;

	cr_assert_eq(shmkit_seg_create(&s, name, &o), 0);
	shmkit_seg_close(s);
	cr_assert_eq(shmkit_seg_open(&raw, name, &(struct shmkit_seg_opts){ .flags = SHMKIT_RAW }), 0);
	uint64_t off = 4096 + 64, size = 100;                    /* header: data_off at 32, */
	memcpy((char *)shmkit_seg_data(raw) + 32, &off, 8);     /* data_size at 40 */
	memcpy((char *)shmkit_seg_data(raw) + 40, &size, 8);
	shmkit_seg_close(raw);
	int err = shmkit_seg_open(&s, name, NULL);
	cr_expect_eq(err, -EBADMSG);
	cr_expect(strstr(shmkit_errdetail(), "page-aligned"), "%s", shmkit_errdetail());
}

/* Sizes are plain numbers: a sign is no size. */
Test(hostile, size_with_a_sign_is_einval)
{
	size_t v;

	cr_expect_eq(shmkit_parse_size("+5", &v), -EINVAL);
	cr_expect_eq(shmkit_parse_size("-5", &v), -EINVAL);
	cr_expect_eq(shmkit_parse_size("5K", &v), 0);
	cr_expect_eq(v, 5120);
}
