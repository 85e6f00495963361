/*
 * refs.h - references of bench/baseline.c as pairs, for rows that measure
 * them again interleaved with their own (a drift of the machine then falls
 * on both alike).  Such a re-measurement is reported as "NAME_again".
 */
#ifndef SHMKIT_BENCH_REFS_H
#define SHMKIT_BENCH_REFS_H

#include "bench.h"

/* Fill *p with the pair that measures reference `name` (cacheline_rtt,
 * msg64_rtt, ring_rtt_2slot, ring_rtt_64slot); its argument is static
 * storage of baseline.c, one per name.  0, or -ENOENT for another name. */
int bench_ref_pair(const char *name, struct bench_pair *p);

/* bench/bus.c: the spinning one-subscriber bus round trip (bus_rtt_spin)
 * as a pair (static storage of bus.c); 0. */
int bench_bus_spin_pair(struct bench_pair *p);

/* bench/mpmc.c: a spinning 64-byte round trip over two Vyukov queues of
 * 64 cells (vyukov_rtt), or with each cell's publication and release a
 * CAS of its seq (vyukov_rtt_cas: the two locked operations the MPMC
 * channel keeps so that a handle wrongly taken for dead gets -ESTALE and
 * writes nothing); static storage of mpmc.c, one per variant.  0. */
int bench_vyukov_rtt_pair(struct bench_pair *p, bool cas);

#endif
