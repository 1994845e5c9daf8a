/* bench.h: `metacenter bench`: a pipelined, multi-connection load generator (native protocol). */
#ifndef MC_LOADGEN_BENCH_H
#define MC_LOADGEN_BENCH_H

/* argv[0] is "bench". Returns the process exit code. */
int mc_bench_main(int argc, char **argv);

#endif
