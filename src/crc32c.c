/*
 * crc32c.c - CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the
 * checksum of journal records and headers.
 *
 * On x86-64 with SSE4.2 the crc32 instruction does 8 bytes per step; the
 * choice is made once, at the first call, from the CPU's feature bits.
 * Elsewhere (or without SSE4.2) a slicing-by-8 table does it in software.
 * Both give the same value: sk_crc32c(0, "123456789", 9) == 0xE3069283.
 */
#include <pthread.h>
#include <stddef.h>
#include <string.h>

#include "journal.h"

#define CRC32C_POLY 0x82F63B78u

static uint32_t crc_table[8][256];

static void table_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = (c >> 1) ^ (CRC32C_POLY & (0u - (c & 1)));
		crc_table[0][i] = c;
	}
	for (uint32_t i = 0; i < 256; i++)
		for (int t = 1; t < 8; t++)
			crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^
			                  crc_table[0][crc_table[t - 1][i] & 0xff];
}

static uint32_t sw_update(uint32_t c, const unsigned char *p, size_t n)
{
	while (n >= 8) {
		uint64_t w;
		memcpy(&w, p, 8);
		w ^= c; /* little-endian: the low bytes are the first ones */
		c = crc_table[7][w & 0xff] ^ crc_table[6][(w >> 8) & 0xff] ^
		    crc_table[5][(w >> 16) & 0xff] ^ crc_table[4][(w >> 24) & 0xff] ^
		    crc_table[3][(w >> 32) & 0xff] ^ crc_table[2][(w >> 40) & 0xff] ^
		    crc_table[1][(w >> 48) & 0xff] ^ crc_table[0][w >> 56];
		p += 8;
		n -= 8;
	}
	while (n--)
		c = (c >> 8) ^ crc_table[0][(c ^ *p++) & 0xff];
	return c;
}

#if defined(__x86_64__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
__attribute__((target("sse4.2")))
static uint32_t hw_update(uint32_t c, const unsigned char *p, size_t n)
{
	uint64_t c64 = c;
	while (n >= 8) {
		uint64_t w;
		memcpy(&w, p, 8);
		c64 = __builtin_ia32_crc32di(c64, w);
		p += 8;
		n -= 8;
	}
	c = (uint32_t)c64;
	while (n--)
		c = __builtin_ia32_crc32qi(c, *p++);
	return c;
}

static bool have_sse42(void)
{
	__builtin_cpu_init();
	return __builtin_cpu_supports("sse4.2");
}
#else
#define hw_update sw_update
static bool have_sse42(void)
{
	return false;
}
#endif

/* Chosen once: pthread_once orders the table build before every use. */
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;
static bool crc_hw;

static void crc_choose(void)
{
	table_init();
	crc_hw = have_sse42();
}

uint32_t sk_crc32c(uint32_t crc, const void *data, size_t len)
{
	pthread_once(&crc_once, crc_choose);
	crc = ~crc;
	crc = crc_hw ? hw_update(crc, data, len) : sw_update(crc, data, len);
	return ~crc;
}

uint32_t shmkit_crc32c(uint32_t crc, const void *data, size_t len)
{
	return data || !len ? sk_crc32c(crc, data, len) : crc; /* NULL: nothing to add */
}

uint32_t sk_crc32c_sw(uint32_t crc, const void *data, size_t len)
{
	pthread_once(&crc_once, crc_choose);
	return ~sw_update(~crc, data, len);
}

bool sk_crc32c_hw_available(void)
{
	return have_sse42();
}
