/* gpt2 bench kv (tools/bench_kv.c): KV bytes per token, serving capacity, memory against T. */
#ifndef GPT2_BENCH_KV_H
#define GPT2_BENCH_KV_H

/*
 * `gpt2 bench kv ARGS`: argc/argv are the arguments after "kv"; record_argc/record_argv the
 * arguments after "bench" (what the result's command line records). Returns the exit code.
 */
int cmd_bench_kv(int argc, char **argv, int record_argc, char **record_argv);

#endif
