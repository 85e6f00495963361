/*
 * errors.c - result codes to text, and the per-thread failure detail.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

/* Room for two paths of a journal near PATH_MAX's usual lengths and the
 * advice after them (256 bytes once cut the `shmkit journal repair` hint
 * out of a detail that named a long path twice). */
static __thread char detail[1024];

const char *shmkit_strerror(int err)
{
	switch (err) {
	case 0: return "success";
	case -EPROTO: return "not a shmkit segment of this kind, or an incompatible version or layout";
	case -EBADMSG: return "corrupt shared state detected";
	case -EOWNERDEAD: return "a dead peer's state was recovered";
	case -ENOTRECOVERABLE: return "state not recoverable after a peer died";
	case -EMSGSIZE: return "message too large";
	case -ENOMSG: return "no such message (e.g. no file descriptor in it)";
	case -EAGAIN: return "would block (empty or full)";
	case -ETIMEDOUT: return "timed out";
	case -EBUSY: return "busy (held by another handle or a live process)";
	case -ENOSPC: return "no space (shared memory full or a kernel limit reached)";
	case -ESTALE: return "stale: overwritten while read, or this handle's claim was taken as dead";
	default: break;
	}
	if (err < 0 && err > -4096)
		return strerrordesc_np(-err) ? strerrordesc_np(-err) : "unknown error";
	return "unknown error";
}

const char *shmkit_errdetail(void)
{
	return detail;
}

void sk_clear_detail(void)
{
	detail[0] = '\0';
}

int sk_fail(int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	return err;
}
