/*
 * seg_memfd.c - memfd_create: an unnamed shared-memory file, sealed so a
 * receiver can neither shrink nor grow it (no SIGBUS from a peer's
 * ftruncate), handed to unrelated processes over a UNIX socket with
 * SCM_RIGHTS.
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "seg.h"

#define SK_SEALS (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)

static int memfd_create_(shmkit_seg *s, size_t map_size, const struct shmkit_seg_opts *o)
{
	mode_t mode = o->mode ? o->mode : 0600;
	unsigned mfd = MFD_CLOEXEC | MFD_ALLOW_SEALING | ((o->flags & SHMKIT_HUGE) ? MFD_HUGETLB : 0);
	int err;

	int fd = memfd_create(s->name.path, mfd);
	if (fd < 0)
		return sk_neg_errno();
	if (fchmod(fd, mode))
		err = sk_neg_errno();
	else if ((err = sk_fd_reserve(fd, map_size)) && (o->flags & SHMKIT_HUGE))
		err = sk_fail(-ENOMEM, "no huge pages available (/proc/sys/vm/nr_hugepages)");
	else if (!err && !(o->flags & SHMKIT_NOSEAL) && fcntl(fd, F_ADD_SEALS, SK_SEALS))
		err = sk_neg_errno();
	if (!err)
		err = sk_fd_map(s, fd, o);
	if (err) {
		close(fd);
		return err;
	}
	s->fd = fd;
	return 0;
}

static int memfd_open(shmkit_seg *s, const struct shmkit_seg_opts *o)
{
	return sk_fail(-EINVAL, "memfd segments have no name to open; receive the fd");
}

static int memfd_remove(const struct sk_name *n)
{
	return sk_fail(-EINVAL, "memfd segments have no name to remove; closing frees them");
}

/* A memfd never has a name on disk (st_nlink is 0): not "removed". */
static int memfd_stat(const shmkit_seg *s, struct shmkit_seg_info *st)
{
	int err = sk_fd_stat(s, st);

	st->removed = 0;
	return err;
}

const struct sk_backend_ops sk_memfd_ops = {
	.backend = SHMKIT_MEMFD,
	.label = "memfd",
	.create = memfd_create_,
	.open = memfd_open,
	.close = sk_fd_close,
	.remove = memfd_remove,
	.stat = memfd_stat,
};

int shmkit_seg_send_fd(const shmkit_seg *seg, int sock)
{
	char byte = 'S';
	struct iovec iov = { &byte, 1 };
	union { struct cmsghdr h; char buf[CMSG_SPACE(sizeof(int))]; } u;
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
	                      .msg_control = u.buf, .msg_controllen = sizeof(u.buf) };

	if (!seg || sock < 0)
		return -EINVAL;
	if (seg->fd < 0)
		return sk_fail(-EINVAL, "%s has no fd to pass (sysv or anon)", seg->name.canon);
	memset(&u, 0, sizeof(u));
	struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &seg->fd, sizeof(int));
	ssize_t n;
	do
		n = sendmsg(sock, &msg, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	return n < 0 ? sk_neg_errno() : 0;
}

/* Receive one fd; -EBADMSG if the message carries none. */
static int recv_one_fd(int sock)
{
	char byte;
	struct iovec iov = { &byte, 1 };
	union { struct cmsghdr h; char buf[CMSG_SPACE(sizeof(int) * 4)]; } u;
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
	                      .msg_control = u.buf, .msg_controllen = sizeof(u.buf) };
	ssize_t n;
	int fd = -1;

	do
		n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return sk_neg_errno();
	if (n == 0)
		return sk_fail(-ECONNRESET, "peer closed the socket before sending an fd");
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		size_t cnt = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < cnt; i++) {
			int got;
			memcpy(&got, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			if (fd < 0)
				fd = got;
			else
				close(got); /* only one is expected: leak nothing */
		}
	}
	if (msg.msg_flags & MSG_CTRUNC) {
		if (fd >= 0)
			close(fd);
		return sk_fail(-EBADMSG, "control data truncated");
	}
	return fd >= 0 ? fd : sk_fail(-ENOMSG, "the message carried no file descriptor");
}

/* Name the received fd from /proc ("/memfd:NAME (deleted)"). */
static void name_from_fd(int fd, struct sk_name *n)
{
	char link[64], target[PATH_MAX];
	ssize_t len;

	memset(n, 0, sizeof(*n));
	n->shmid = -1;
	n->backend = SHMKIT_MEMFD;
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	len = readlink(link, target, sizeof(target) - 1);
	target[len > 0 ? len : 0] = '\0';
	const char *p = strncmp(target, "/memfd:", 7) ? target : target + 7;
	char *del = strstr(target, " (deleted)");
	if (del)
		*del = '\0';
	if (!*p)
		p = "received";
	snprintf(n->path, sizeof(n->path), "%s", p);
	snprintf(n->canon, sizeof(n->canon), "memfd:%s", n->path);
}

int shmkit_seg_recv_fd(shmkit_seg **out, int sock, const struct shmkit_seg_opts *opts)
{
	static const struct shmkit_seg_opts defaults;
	struct sk_name n;

	if (!out || sock < 0)
		return -EINVAL;
	*out = NULL;
	sk_clear_detail();
	int fd = recv_one_fd(sock);
	if (fd < 0)
		return fd;
	name_from_fd(fd, &n);
	const struct shmkit_seg_opts *o = opts ? opts : &defaults;
	int err = sk_seg_from_fd(out, fd, &n, o);
	if (err) {
		close(fd);
		return err;
	}
	/* A sender that can still shrink the file could truncate it under
	 * our mapping: our next access would be SIGBUS.  Refuse such an fd
	 * unless the caller accepts the risk (SHMKIT_NOSEAL). */
	int seals = fcntl(fd, F_GET_SEALS);
	if (!(o->flags & SHMKIT_NOSEAL) && (seals < 0 || !(seals & F_SEAL_SHRINK))) {
		shmkit_seg_close(*out);
		*out = NULL;
		return sk_fail(-EPERM, "the received fd is not sealed against shrinking (%s): its "
		               "sender could truncate it under our mapping; pass SHMKIT_NOSEAL to "
		               "accept that", seals < 0 ? "no seals at all" : "no F_SEAL_SHRINK");
	}
	return 0;
}
