/*
 * fuzz_parse.c - the parsers of text a user or another program hands in:
 * segment names (sk_parse_name, every backend's syntax), sizes
 * (shmkit_parse_size), and the tool's option values (timeouts in ms,
 * octal modes) and its escaping of hostile names for a terminal or JSON.
 *
 * Input: one selector byte, then the text (NUL bytes end it early, as a C
 * string would).  Oracles beyond "no crash, no sanitizer report":
 *   - a name that parses has a canonical form that parses again to the
 *     same canonical form and backend;
 *   - a size that parses has no suffix, or the value is a multiple of
 *     its unit, and the digits alone give value >> shift;
 *   - tool_escape always terminates its buffer within its length and
 *     writes only printable ASCII or valid UTF-8 (no terminal escapes).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "fuzz_common.h"
#include "seg.h"

static FILE *devnull;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_name(const char *s)
{
	static struct sk_name n, again;

	if (sk_parse_name(s, &n))
		return;
	if (n.backend < SHMKIT_POSIX || n.backend > SHMKIT_MEMFD)
		abort();
	if (sk_parse_name(n.canon, &again) || again.backend != n.backend ||
	    strcmp(again.canon, n.canon)) {
		fprintf(stderr, "fuzz: name '%s' -> '%s' does not parse back to itself\n", s, n.canon);
		abort();
	}
}

static void check_size(const char *s)
{
	size_t v = 0;

	if (shmkit_parse_size(s, &v))
		return;
	/* Leading digits only: what strtoull would see, without a suffix. */
	char digits[32];
	size_t k = strspn(s, "0123456789");
	if (k == 0 || k >= sizeof(digits))
		return;
	memcpy(digits, s, k);
	digits[k] = '\0';
	unsigned long long base = strtoull(digits, NULL, 10);
	unsigned shift = 0;
	switch (s[k]) {
	case 'k': case 'K': shift = 10; break;
	case 'm': case 'M': shift = 20; break;
	case 'g': case 'G': shift = 30; break;
	case 't': case 'T': shift = 40; break;
	}
	if ((v >> shift) != base || (v & ((1ull << shift) - 1))) {
		fprintf(stderr, "fuzz: size '%s' parsed as %zu\n", s, v);
		abort();
	}
}

static void check_escape(const char *s, size_t len)
{
	char buf[64];

	if (len > sizeof(buf))
		len = sizeof(buf);
	memset(buf, 'Z', sizeof(buf));
	tool_escape(s, buf, len);
	if (!len)
		return;
	size_t n = strnlen(buf, len);
	if (n >= len)
		abort(); /* not terminated within its length */
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)buf[i] < 0x20 || buf[i] == 0x7f)
			abort(); /* a control byte reached the terminal */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!devnull)
		devnull = fopen("/dev/null", "w");
	if (!devnull || size < 1 || size > 8192)
		return 0;
	char *s = malloc(size);
	if (!s)
		return 0;
	memcpy(s, data + 1, size - 1);
	s[size - 1] = '\0';
	int64_t ns;
	unsigned mode;
	FILE *err = stderr;

	switch (data[0] % 6) {
	case 0:
		check_name(s);
		break;
	case 1:
		check_size(s);
		break;
	case 2:
		if (!tool_parse_ms(s, &ns) && ns < -1)
			abort();
		break;
	case 3:
		stderr = devnull; /* usage text; sanitizer reports go to fd 2 */
		if (!tool_parse_mode("fuzz", "--mode", s, &mode) && (mode == 0 || mode > 07777))
			abort();
		stderr = err;
		break;
	case 4:
		check_escape(s, (size_t)(data[0] >> 3));
		break;
	case 5: {
		FILE *out = stdout;
		stdout = devnull;
		tool_json_str(s);
		stdout = out;
		break;
	}
	}
	free(s);
	return 0;
}
