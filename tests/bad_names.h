/*
 * bad_names.h - malformed segment names and the error each must get, for
 * every test that feeds bad names to the API or the tool.  Static: each
 * includer gets its own copy.
 */
#ifndef SK_BAD_NAMES_H
#define SK_BAD_NAMES_H

#include <errno.h>

static const struct bad_name {
	const char *name;
	int err;
} bad_names[] = {
	{ "", -EINVAL }, { "posix:", -EINVAL }, { "posix:/", -EINVAL }, { "/", -EINVAL },
	{ "posix:/a/b", -EINVAL }, { "a/b", -EINVAL }, { "/sktest/x", -EINVAL },
	{ "posix:/.", -EINVAL }, { "..", -EINVAL },
	{ "sysv:", -EINVAL }, { "sysv:0xZZ", -EINVAL }, { "sysv:0", -EINVAL }, { "sysv:0x0", -EINVAL },
	{ "sysv:0x", -EINVAL }, { "sysv:-1", -EINVAL }, { "sysv:+5", -EINVAL }, { "sysv: 5", -EINVAL },
	{ "sysv:0x100000000", -EINVAL }, { "sysv:12ab", -EINVAL },
	{ "sysv:id=", -EINVAL }, { "sysv:id=x", -EINVAL }, { "sysv:id=-3", -EINVAL },
	{ "sysv:/tmp", -EINVAL }, { "sysv:/tmp:", -EINVAL }, { "sysv:/tmp:0", -EINVAL },
	{ "sysv:/tmp:256", -EINVAL }, { "sysv:/tmp:x", -EINVAL },
	{ "sysv:/sktest-no-such-dir/x:1", -ENOENT },
	{ "file:", -EINVAL }, { "memfd:", -EINVAL },
	{ "bogus:x", -EINVAL }, { "POSIX:x", -EINVAL }, { "http:x", -EINVAL },
};

#endif /* SK_BAD_NAMES_H */
