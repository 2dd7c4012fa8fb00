/*
 * The --prompts file of `gpt2 generate`: one prompt per line. Lines end at '\n', and a '\r'
 * right before it is dropped (files written on Windows). Every line is a prompt, an empty one
 * included; the last line counts without a '\n', and a final '\n' does not start another. Any
 * other byte, NUL included, is prompt text.
 */
#ifndef GPT2_PROMPTS_H
#define GPT2_PROMPTS_H

#include <stddef.h>

#define PROMPTS_MAX (1 << 20) /* lines in one file */

typedef struct {
    const char **text; /* [count] views into the parsed bytes, not NUL-terminated */
    size_t *len;       /* [count] */
    int count;
} prompt_list;

/*
 * Splits bytes[0, n) into prompts (views into bytes, which must outlive the list). Returns 0, or
 * -1 with one line in err: out of memory, or more than PROMPTS_MAX lines.
 */
int prompt_list_parse(prompt_list *out, const char *bytes, size_t n, char *err, size_t err_len);
void prompt_list_free(prompt_list *list);

#endif
