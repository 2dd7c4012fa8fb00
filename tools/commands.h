/* The gpt2 subcommands. Each takes the arguments after its name and returns the exit code. */
#ifndef GPT2_COMMANDS_H
#define GPT2_COMMANDS_H

int cmd_analyze(int argc, char **argv);
int cmd_bench(int argc, char **argv);
/* gpt2 bench policies (tools/bench_policies.c): argc/argv after "policies", record_* after "bench". */
int cmd_bench_policies(int argc, char **argv, int record_argc, char **record_argv);
int cmd_generate(int argc, char **argv);
int cmd_kvcompare(int argc, char **argv);
int cmd_logits(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_detokenize(int argc, char **argv);
int cmd_plot(int argc, char **argv);
int cmd_ppl(int argc, char **argv);

#endif
