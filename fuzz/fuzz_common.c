/*
 * fuzz_common.c - see fuzz_common.h.
 */
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fuzz_common.h"
#include "shmkit.h"

static int private_shm;
static char name_buf[128];
static unsigned long name_seq;

/* A mount namespace of our own with a fresh tmpfs on /dev/shm; changes
 * no mount outside this process (propagation made private first). */
static int private_dev_shm(void)
{
	if (unshare(CLONE_NEWNS))
		return 0;
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL))
		return 0;
	if (mount("sktest-fuzz", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "size=256m,mode=1777"))
		return 0;
	return 1;
}

void fz_init(void)
{
	if (!private_shm)
		private_shm = private_dev_shm();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fz_init();
	return 0;
}

void fz_result(long r, long limit, const char *what)
{
	if (r > limit || r < -4095) {
		fprintf(stderr, "fuzz: %s returned %ld (limit %ld)\n", what, r, limit);
		abort();
	}
}

int fz_private(void)
{
	return private_shm;
}

const char *fz_name(const char *tag)
{
	snprintf(name_buf, sizeof(name_buf), "sktest-fuzz-%d-%s-%lu", (int)getpid(), tag, name_seq++);
	return name_buf;
}

const char *fz_dir(const char *tag)
{
	snprintf(name_buf, sizeof(name_buf), "/dev/shm/sktest-fuzz-%d-%s-%lu", (int)getpid(), tag,
	         name_seq++);
	return name_buf;
}

static int rm_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (type == FTW_DP)
		rmdir(path);
	else
		unlink(path);
	return 0;
}

void fz_rmtree(const char *path)
{
	nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

void fz_patch(struct fz_in *in, void *base, size_t size)
{
	size_t off = fz_u16(in) % size, len = fz_u8(in);
	if (len > size - off)
		len = size - off;
	fz_image(in, (uint8_t *)base + off, len);
}

/* Monotonic time less the time this thread waited for a CPU (the second
 * field of /proc/thread-self/schedstat, in ns): on a machine whose cores
 * are busy with other work a runnable thread may wait seconds for its
 * turn, which says nothing about the code under test.  What remains is
 * time spent running or sleeping - a loop on a shared value, or a wait
 * that ignores its timeout, still counts in full. */
int64_t fz_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	int64_t now = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
	unsigned long long run = 0, delay = 0;
	FILE *f = fopen("/proc/thread-self/schedstat", "re");
	if (f) {
		if (fscanf(f, "%llu %llu", &run, &delay) != 2)
			delay = 0;
		fclose(f);
	}
	return now - (int64_t)delay;
}

void fz_check_bound(int64_t start, const char *what)
{
	int64_t took = fz_now() - start;
	if (took > FZ_OP_BOUND_NS) {
		fprintf(stderr, "fuzz: %s took %lld ms, past its bound of %lld ms\n", what,
		        (long long)(took / 1000000), (long long)(FZ_OP_BOUND_NS / 1000000));
		abort();
	}
}

int64_t fz_timeout(uint8_t b)
{
	return (b & 0x0f) == 0x0f ? 1000000 : 0;
}

struct shmkit_seg *fz_raw_open(const char *name, unsigned char **data, size_t *size)
{
	struct shmkit_seg_opts ro = { .flags = SHMKIT_RAW };
	shmkit_seg *raw;

	if (shmkit_seg_open(&raw, name, &ro) || shmkit_seg_size(raw) < 8192) {
		fprintf(stderr, "fuzz: cannot map %s raw\n", name);
		abort();
	}
	*data = (unsigned char *)shmkit_seg_data(raw) + 4096;
	*size = shmkit_seg_size(raw) - 4096;
	return raw;
}

void fz_touch(const void *p, long n)
{
	volatile uint8_t sum = 0;
	for (long i = 0; i < n; i++)
		sum = (uint8_t)(sum ^ ((const uint8_t *)p)[i]);
	(void)sum;
}

static int is_data(const struct dirent *d)
{
	size_t n = strlen(d->d_name);
	return n > 4 && !strcmp(d->d_name + n - 4, ".skj");
}

void fz_journal_file(const char *dir, unsigned k, char *out, size_t len)
{
	struct dirent **list;
	int n = scandir(dir, &list, is_data, alphasort);

	if (n < 0)
		n = 0;
	k %= (unsigned)(n + 1);
	if (k == (unsigned)n)
		snprintf(out, len, "%s/journal.meta", dir);
	else
		snprintf(out, len, "%s/%s", dir, list[k]->d_name);
	for (int i = 0; i < n; i++)
		free(list[i]);
	free(list);
}

void fz_write_in_place(const char *path, uint64_t off, const void *buf, size_t n)
{
	struct stat st;
	int fd = open(path, O_WRONLY);

	if (fd < 0)
		return;
	if (fstat(fd, &st) == 0 && st.st_size > 0) {
		off %= (uint64_t)st.st_size;
		if (n > (uint64_t)st.st_size - off)
			n = (size_t)((uint64_t)st.st_size - off);
		(void)!pwrite(fd, buf, n, (off_t)off);
	}
	close(fd);
}

struct shmkit_journal *fz_journal_make(char *dir, size_t dirlen, const char *tag, uint8_t cfg,
                                       unsigned nrec, uint32_t *file_size, uint32_t *max_record)
{
	static const uint8_t msg[256];
	struct shmkit_journal_opts o = { .flags = SHMKIT_JOURNAL_WRITE | SHMKIT_JOURNAL_CREATE,
	                                 .file_size = 4096u * (1 + (cfg & 3)),
	                                 .max_record = 16u << ((cfg >> 2) & 3) };
	shmkit_journal *w;

	snprintf(dir, dirlen, "%s", fz_dir(tag));
	if (shmkit_journal_open(&w, dir, &o)) {
		fprintf(stderr, "fuzz: cannot create journal %s: %s\n", dir, shmkit_errdetail());
		abort();
	}
	for (unsigned i = 0; i < nrec; i++)
		if (shmkit_journal_append(w, msg, i * 7 % (o.max_record + 1), NULL))
			abort();
	*file_size = (uint32_t)o.file_size;
	*max_record = o.max_record;
	return w;
}

void fz_journal_record(const struct shmkit_record *rec, uint64_t *last, uint32_t max_record)
{
	if (rec->len > max_record || rec->seq <= *last) {
		fprintf(stderr, "fuzz: record seq %llu after %llu, %u bytes (max %u)\n",
		        (unsigned long long)rec->seq, (unsigned long long)*last, rec->len, max_record);
		abort();
	}
	*last = rec->seq;
	fz_touch(rec->data, rec->len);
}
