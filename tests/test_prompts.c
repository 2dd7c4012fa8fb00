/*
 * The --prompts file parser (tools/prompts.c): one prompt per line, '\n' ends a line and a '\r'
 * right before it is dropped, every line counts (empty ones too, and an unterminated last one), a
 * final '\n' starts no other, any other byte (NUL included) is text, and more than PROMPTS_MAX
 * lines is an error. The expected lines are written out by hand from those rules.
 */
#include <stdlib.h>
#include <string.h>

#include "tests/check.h"
#include "tools/prompts.h"

/* One expected line: its offset into the input and its bytes. */
typedef struct {
    size_t offset;
    const char *text;
    size_t len;
} line;

#define LINE(offset, text) {offset, text, sizeof text - 1}

/* Parses an exact-size heap copy of bytes[0, n), so that any read past the end trips ASan. */
static int parse_exact(prompt_list *list, char **copy, const char *bytes, size_t n, char *err,
                       size_t err_len) {
    *copy = malloc(n ? n : 1);
    if (!*copy) return -2;
    if (n) memcpy(*copy, bytes, n);
    return prompt_list_parse(list, *copy, n, err, err_len);
}

/* name: what the case is; input: bytes[0, n); want: the count lines the parser must return. */
static void expect_lines(const char *name, const char *bytes, size_t n, const line *want,
                         int count) {
    char err[256] = "";
    char *copy;
    prompt_list list;
    int rc = parse_exact(&list, &copy, bytes, n, err, sizeof err);
    CHECK(rc == 0, "%s: rejected (%s)", name, err);
    if (rc != 0) {
        free(copy);
        return;
    }
    CHECK(list.count == count, "%s: %d prompts, want %d", name, list.count, count);
    for (int i = 0; i < count && i < list.count; i++) {
        CHECK(list.text[i] == copy + want[i].offset, "%s: line %d starts at %td, want %zu", name, i,
              list.text[i] - copy, want[i].offset);
        CHECK(list.len[i] == want[i].len, "%s: line %d has %zu bytes, want %zu", name, i,
              list.len[i], want[i].len);
        CHECK(list.len[i] != want[i].len || memcmp(list.text[i], want[i].text, want[i].len) == 0,
              "%s: line %d has the wrong bytes", name, i);
    }
    prompt_list_free(&list);
    CHECK(list.count == 0 && list.text == NULL && list.len == NULL, "%s: free leaves a list", name);
    free(copy);
}

#define EXPECT(bytes, ...)                                                            \
    do {                                                                              \
        static const line want[] = {__VA_ARGS__};                                     \
        expect_lines(#bytes, bytes, sizeof bytes - 1, want, sizeof want / sizeof *want); \
    } while (0)

static void test_lines(void) {
    expect_lines("empty input", "", 0, NULL, 0);
    EXPECT("\n", LINE(0, ""));
    EXPECT("a", LINE(0, "a"));
    EXPECT("a\n", LINE(0, "a"));
    EXPECT("a\n\nb\n", LINE(0, "a"), LINE(2, ""), LINE(3, "b"));
    EXPECT("a\n\nb", LINE(0, "a"), LINE(2, ""), LINE(3, "b"));
    EXPECT("\n\n", LINE(0, ""), LINE(1, ""));
    EXPECT("hello world\nsecond line\n", LINE(0, "hello world"), LINE(12, "second line"));
    EXPECT(" \t \n", LINE(0, " \t "));
}

static void test_carriage_returns(void) {
    EXPECT("a\r\nb", LINE(0, "a"), LINE(3, "b"));
    EXPECT("a\r\nb\r\n", LINE(0, "a"), LINE(3, "b"));
    EXPECT("a\r", LINE(0, "a\r")); /* no '\n' after it: text */
    EXPECT("\r", LINE(0, "\r"));
    EXPECT("\r\n\r\n", LINE(0, ""), LINE(2, ""));
    EXPECT("\r\n", LINE(0, ""));
    EXPECT("a\r\r\n", LINE(0, "a\r")); /* only the one right before '\n' goes */
    EXPECT("\r\r\n", LINE(0, "\r"));
    EXPECT("a\rb\n", LINE(0, "a\rb"));
    EXPECT("\ra\r\n\r", LINE(0, "\ra"), LINE(4, "\r"));
    EXPECT("\n\r", LINE(0, ""), LINE(1, "\r"));
}

static void test_nul_bytes(void) {
    EXPECT("\0", LINE(0, "\0"));
    EXPECT("a\0b\n\0\n", LINE(0, "a\0b"), LINE(4, "\0"));
    EXPECT("\0\r\n\0", LINE(0, "\0"), LINE(3, "\0"));
    EXPECT("\0\0\0", LINE(0, "\0\0\0"));
    EXPECT("x\0\r\0\n", LINE(0, "x\0\r\0"));
    EXPECT("\xff\xfe\n\x80", LINE(0, "\xff\xfe"), LINE(3, "\x80"));
}

/* A line of 1 MB, terminated by "\r\n", then a short unterminated one. */
static void test_long_line(void) {
    enum { MB = 1 << 20 };
    const size_t n = MB + 3;
    char *bytes = malloc(n);
    CHECK(bytes != NULL, "out of memory");
    if (!bytes) return;
    for (size_t i = 0; i < MB; i++) bytes[i] = (char)('a' + i % 26);
    memcpy(bytes + MB, "\r\ny", 3);
    char err[256] = "";
    prompt_list list;
    CHECK(prompt_list_parse(&list, bytes, n, err, sizeof err) == 0, "1 MB line rejected: %s", err);
    CHECK(list.count == 2, "1 MB line: %d prompts, want 2", list.count);
    if (list.count == 2) {
        CHECK(list.text[0] == bytes && list.len[0] == MB, "1 MB line: first is %zu bytes",
              list.len[0]);
        CHECK(list.text[1] == bytes + MB + 2 && list.len[1] == 1 && list.text[1][0] == 'y',
              "1 MB line: second is wrong");
    }
    prompt_list_free(&list);

    /* The same line alone, unterminated. */
    CHECK(prompt_list_parse(&list, bytes, MB, err, sizeof err) == 0, "1 MB line rejected: %s", err);
    CHECK(list.count == 1 && list.text[0] == bytes && list.len[0] == MB,
          "1 MB unterminated line: %d prompts", list.count);
    prompt_list_free(&list);
    free(bytes);
}

/* Expects bytes[0, n) to fail for holding `lines` lines, with one line in err naming the count. */
static void expect_too_many(const char *name, const char *bytes, size_t n, const char *lines) {
    char err[256] = "";
    prompt_list list = {.count = 7}; /* the parser must clear it */
    CHECK(prompt_list_parse(&list, bytes, n, err, sizeof err) == -1, "%s: accepted", name);
    CHECK(list.count == 0 && list.text == NULL && list.len == NULL, "%s: the list is not empty",
          name);
    CHECK(err[0] != '\0' && strchr(err, '\n') == NULL, "%s: error '%s' is not one line", name, err);
    CHECK(strstr(err, lines) != NULL, "%s: error '%s' lacks the count %s", name, err, lines);
    CHECK(strstr(err, "1048576") != NULL, "%s: error '%s' lacks the limit", name, err);
    prompt_list_free(&list);
}

/* PROMPTS_MAX lines pass, PROMPTS_MAX + 1 fail (terminated or not); a small err is cut short. */
static void test_limit(void) {
    CHECK(PROMPTS_MAX == 1048576, "PROMPTS_MAX is %d; the messages below expect 1048576",
          PROMPTS_MAX);
    const size_t max = PROMPTS_MAX;
    char *bytes = malloc(max + 2);
    CHECK(bytes != NULL, "out of memory");
    if (!bytes) return;
    memset(bytes, '\n', max + 1);
    bytes[max + 1] = 'z';
    char err[256] = "";
    prompt_list list;

    /* PROMPTS_MAX empty lines, each terminated. */
    CHECK(prompt_list_parse(&list, bytes, max, err, sizeof err) == 0, "PROMPTS_MAX lines: %s", err);
    CHECK(list.count == PROMPTS_MAX, "PROMPTS_MAX lines: %d prompts", list.count);
    if (list.count == PROMPTS_MAX)
        CHECK(list.text[max - 1] == bytes + max - 1 && list.len[max - 1] == 0 &&
                  list.text[0] == bytes && list.len[0] == 0,
              "PROMPTS_MAX lines: the views are wrong");
    prompt_list_free(&list);

    /* PROMPTS_MAX - 1 terminated lines and an unterminated last one: bytes[2, max + 2). */
    CHECK(prompt_list_parse(&list, bytes + 2, max, err, sizeof err) == 0,
          "PROMPTS_MAX lines, the last unterminated: %s", err);
    CHECK(list.count == PROMPTS_MAX, "PROMPTS_MAX lines, the last unterminated: %d prompts",
          list.count);
    if (list.count == PROMPTS_MAX)
        CHECK(list.text[max - 1] == bytes + max + 1 && list.len[max - 1] == 1,
              "PROMPTS_MAX lines, the last unterminated: the last view is wrong");
    prompt_list_free(&list);

    expect_too_many("PROMPTS_MAX + 1 terminated lines", bytes, max + 1, "1048577");
    expect_too_many("PROMPTS_MAX terminated lines and one more", bytes + 1, max + 1, "1048577");
    expect_too_many("PROMPTS_MAX + 2 lines", bytes, max + 2, "1048578");

    /* A short err buffer holds a cut, terminated message. */
    char tiny[8];
    memset(tiny, 'X', sizeof tiny);
    CHECK(prompt_list_parse(&list, bytes, max + 1, tiny, sizeof tiny) == -1, "tiny err: accepted");
    CHECK(memchr(tiny, '\0', sizeof tiny) != NULL, "tiny err: not terminated");
    prompt_list_free(&list);
    free(bytes);
}

int main(void) {
    test_lines();
    test_carriage_returns();
    test_nul_bytes();
    test_long_line();
    test_limit();
    return check_finish("test_prompts");
}
