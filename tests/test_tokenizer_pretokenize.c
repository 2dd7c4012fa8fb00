/*
 * The pre-tokenizer's pieces, spelled out for each rule of the gpt2 pattern, for the invalid
 * UTF-8 behaviour that tiktoken cannot show (it only takes strings), and spot checks of the
 * Unicode class table. The ids that follow from these pieces are checked against tiktoken by
 * test_tokenizer_vectors.
 */
#include <string.h>

#include "check.h"
#include "tokenizer/pretokenize.h"
#include "tokenizer/unicode_class.h"

#define MAX_PIECES 8

typedef struct {
    const char *text;
    const char *pieces[MAX_PIECES]; /* NULL-terminated */
} split_case;

static const split_case cases[] = {
    /* Contractions: lowercase, wherever a piece starts, whatever follows. */
    {"it's", {"it", "'s"}},
    {"don't", {"don", "'t"}},
    {"we'll've", {"we", "'ll", "'ve"}},
    {"'sa", {"'s", "a"}},
    {"IT'S", {"IT", "'", "S"}},
    {"''s", {"''", "s"}},
    {" 's", {" '", "s"}},
    {"!'s", {"!'", "s"}},
    {"'", {"'"}},
    {"'l", {"'", "l"}},
    /* An optional U+0020 before a run; the character after it picks the run. */
    {"hello world", {"hello", " world"}},
    {" 123", {" 123"}},
    {"abc123", {"abc", "123"}},
    {" 123abc", {" 123", "abc"}},
    {"1,000", {"1", ",", "000"}},
    {"x ...", {"x", " ..."}},
    {"a\xc2\xa0" "b", {"a", "\xc2\xa0", "b"}},                  /* U+00A0 is \s, not a prefix */
    {"e\xcc\x81", {"e", "\xcc\x81"}},                        /* a combining mark is "other" */
    {" \xcc\x81" "a", {" \xcc\x81", "a"}},
    {"\xe4\xb8\xad\xe6\x96\x87 \xe5\xad\x97", {"\xe4\xb8\xad\xe6\x96\x87", " \xe5\xad\x97"}},
    {"\xd9\xa3\xd9\xa4x", {"\xd9\xa3\xd9\xa4", "x"}},        /* Arabic-Indic digits are \p{N} */
    {"\xf0\x9f\x91\x8d\xf0\x9f\x8f\xbd!", {"\xf0\x9f\x91\x8d\xf0\x9f\x8f\xbd!"}},
    /* White space before a non-space gives its last character to the next piece. */
    {"  123", {" ", " 123"}},
    {"a   b", {"a", "  ", " b"}},
    {"\n\n hello", {"\n\n", " hello"}},
    {"\n\nhello", {"\n", "\n", "hello"}},
    {"\thello", {"\t", "hello"}},
    {" \thello", {" ", "\t", "hello"}},
    {"a\r\nb", {"a", "\r", "\n", "b"}},
    {"a\r\n\r\nb", {"a", "\r\n\r", "\n", "b"}},
    {"x\xe3\x80\x80\xe3\x80\x80y", {"x", "\xe3\x80\x80", "\xe3\x80\x80", "y"}},
    {"  !", {" ", " !"}},
    /* White space at the end of the text stays whole. */
    {"hi  ", {"hi", "  "}},
    {"hi \n", {"hi", " \n"}},
    {"\n\n\n", {"\n\n\n"}},
    {" ", {" "}},
    {"a ", {"a", " "}},
    /* Bytes that do not start a well-formed character: one "other" character each. */
    {"a\xff" "b", {"a", "\xff", "b"}},
    {" \xff\xfe!", {" \xff\xfe!"}},
    {"x\xe2\x82y", {"x", "\xe2\x82", "y"}},                  /* a character cut short */
    {"caf\xc3", {"caf", "\xc3"}},
    {"\xc3\xa9t\xc3", {"\xc3\xa9t", "\xc3"}},
    {"\xc0\xaf" "a", {"\xc0\xaf", "a"}},                      /* overlong '/' */
    {"\xed\xa0\x80x", {"\xed\xa0\x80", "x"}},                 /* a surrogate */
    {"\xf4\x90\x80\x80" "1", {"\xf4\x90\x80\x80", "1"}},      /* above U+10FFFF */
    {"\x80\x80 a", {"\x80\x80", " a"}},
    {"  \xff", {" ", " \xff"}},
    {"'\xffs", {"'\xff", "s"}},
};

static void check_split(const split_case *c) {
    const uint8_t *text = (const uint8_t *)c->text;
    size_t len = strlen(c->text), start = 0, i = 0;
    for (; c->pieces[i] && start < len; i++) {
        size_t end = pretoken_end(text, len, start);
        size_t want = strlen(c->pieces[i]);
        CHECK(end > start && end <= len && end - start == want &&
                  memcmp(text + start, c->pieces[i], want) == 0,
              "case \"%s\": piece %zu is %zu bytes, expected \"%s\"", c->text, i, end - start,
              c->pieces[i]);
        if (end <= start || end > len) return;
        start = end;
    }
    CHECK(!c->pieces[i] && start == len, "case \"%s\": %zu pieces, not as expected", c->text, i);
}

static void check_classes(void) {
    static const struct {
        uint32_t cp;
        char_class cls;
    } spots[] = {
        {'a', CHAR_LETTER},   {'Z', CHAR_LETTER},    {'0', CHAR_NUMBER},  {' ', CHAR_SPACE},
        {'\t', CHAR_SPACE},   {'\v', CHAR_SPACE},    {0x1C, CHAR_OTHER},  {'\'', CHAR_OTHER},
        {0, CHAR_OTHER},      {0x85, CHAR_SPACE},    {0xA0, CHAR_SPACE},  {0xAA, CHAR_LETTER},
        {0xB2, CHAR_NUMBER},  {0x301, CHAR_OTHER},   {0x663, CHAR_NUMBER}, {0x2028, CHAR_SPACE},
        {0x200B, CHAR_OTHER}, {0x3000, CHAR_SPACE},  {0x4E2D, CHAR_LETTER}, {0xFEFF, CHAR_OTHER},
        {0x1F600, CHAR_OTHER}, {0x1C89, CHAR_LETTER}, /* new in Unicode 16.0 */
        {0x2EBF0, CHAR_LETTER}, /* new in 15.1 */      {0xA7CE, CHAR_OTHER}, /* new in 17.0 */
        {0x10FFFF, CHAR_OTHER}, {0x110000, CHAR_OTHER}, {UINT32_MAX, CHAR_OTHER},
    };
    for (size_t i = 0; i < sizeof spots / sizeof spots[0]; i++)
        CHECK(unicode_class_of(spots[i].cp) == spots[i].cls, "U+%04X: class %d, expected %d",
              (unsigned)spots[i].cp, (int)unicode_class_of(spots[i].cp), (int)spots[i].cls);
    for (uint32_t c = 0; c < 0x80; c++)
        CHECK(unicode_ascii_class((uint8_t)c) == unicode_class_of(c), "ASCII %u", (unsigned)c);
}

int main(void) {
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) check_split(&cases[i]);
    check_classes();
    return check_finish("test_tokenizer_pretokenize");
}
