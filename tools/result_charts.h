/*
 * The drawing of the charts a result file embeds (tools/result_charts.c): shared by `gpt2 plot`
 * and the subcommands that save results. Part of the gpt2 executable, not of the gpt2_result
 * library, since it reports through cli_error and draws with the plot library.
 */
#ifndef GPT2_RESULT_CHARTS_H
#define GPT2_RESULT_CHARTS_H

#include <stdio.h>

#include "model/json.h"

/*
 * Draws every chart in root's "charts" array (specs as tools/plot.h describes, each with a
 * "file" that is a plain name ending in .png) into out_dir, which must exist, and prints each
 * path written on list when list is not NULL. path names the result file in errors. Returns 0,
 * or 1 after printing one line as "gpt2 CMD: ...".
 */
int result_draw_charts(const char *cmd, const char *path, const json_value *root,
                       const char *out_dir, FILE *list);

#endif
