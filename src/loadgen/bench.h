/* bench.h: `metacenter bench`: a pipelined, multi-connection load generator (native protocol). */
#ifndef MC_LOADGEN_BENCH_H
#define MC_LOADGEN_BENCH_H

#include <stdint.h>

/* argv[0] is "bench". Returns the process exit code. */
int mc_bench_main(int argc, char **argv);

/* When a reply's latency ends (mc_mono_ns clock): rx_ns, the kernel's receive time
 * (mc_client_rx_ns), unless it is 0 or earlier than start_ns (the time the request fell due: a
 * wall-clock step moved the stamp back); then read_ns, the time the replies were read, or the
 * clock now when read_ns is 0. Exposed for its unit test. */
uint64_t mc_bench_reply_ns(uint64_t rx_ns, uint64_t start_ns, uint64_t read_ns);

#endif
