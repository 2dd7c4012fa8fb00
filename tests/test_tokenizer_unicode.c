/*
 * The compiled Unicode class table (tokenizer/unicode_tables.c) against this machine's Unicode
 * Character Database, read independently of the generator. The table reproduces the Unicode
 * version of tiktoken's regex engine (unicode_tables_version); the local UCD may differ:
 *   - same or newer: every code point is checked, those assigned after the table's version
 *     (DerivedAge.txt) being unassigned, so "other";
 *   - older: every code point the local UCD assigns is checked (a character keeps its class).
 * Skipped (exit 77) when the UCD files are absent (Debian's unicode-data package).
 *
 * Usage: test_tokenizer_unicode UCD_DIR
 */
#include <stdbool.h>
#include <string.h>

#include "check.h"
#include "tokenizer/unicode_class.h"

#define N_CODE_POINTS (UNICODE_MAX_CODE_POINT + 1)

static uint8_t expected[N_CODE_POINTS]; /* char_class */
static bool assigned[N_CODE_POINTS];

static FILE *open_ucd(const char *dir, const char *name) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return fopen(path, "r");
}

static char_class class_of_category(const char *gc) {
    if (gc[0] == 'L' && strchr("ultmo", gc[1])) return CHAR_LETTER;
    if (gc[0] == 'N' && strchr("dlo", gc[1])) return CHAR_NUMBER;
    return CHAR_OTHER;
}

/* UnicodeData.txt: "CODE;NAME;CATEGORY;...", large ranges as "<..., First>" "<..., Last>". */
static void read_unicode_data(FILE *f) {
    char line[1024];
    unsigned long range_first = 0;
    bool in_range = false;
    while (fgets(line, sizeof line, f)) {
        char *name = strchr(line, ';'), *gc = name ? strchr(name + 1, ';') : NULL;
        if (!gc) continue;
        unsigned long cp = strtoul(line, NULL, 16);
        if (cp >= N_CODE_POINTS) continue;
        if (strstr(name, ", First>;")) {
            range_first = cp;
            in_range = true;
            continue;
        }
        unsigned long first = in_range ? range_first : cp;
        in_range = false;
        for (unsigned long c = first; c <= cp; c++) {
            expected[c] = (uint8_t)class_of_category(gc + 1);
            assigned[c] = true;
        }
    }
}

/*
 * Calls visit(first, last, value) for each "XXXX..YYYY ; value # comment" line of a file like
 * PropList.txt or DerivedAge.txt.
 */
static void read_ranges(FILE *f, void (*visit)(unsigned long, unsigned long, const char *)) {
    char line[1024];
    while (fgets(line, sizeof line, f)) {
        char *semicolon = strchr(line, ';');
        if (line[0] == '#' || !semicolon) continue;
        char *end;
        unsigned long first = strtoul(line, &end, 16), last = first;
        if (end[0] == '.' && end[1] == '.') last = strtoul(end + 2, NULL, 16);
        char value[64];
        if (sscanf(semicolon + 1, " %63[^ #\n]", value) != 1) continue;
        if (last >= N_CODE_POINTS) last = N_CODE_POINTS - 1;
        visit(first, last, value);
    }
}

static void mark_white_space(unsigned long first, unsigned long last, const char *prop) {
    if (strcmp(prop, "White_Space") != 0) return;
    for (unsigned long c = first; c <= last; c++) expected[c] = CHAR_SPACE;
}

/* Versions as major * 1000 + minor; "16.0" and "16.0.0" are the same. */
static int version_number(const char *v) {
    int major = 0, minor = 0;
    sscanf(v, "%d.%d", &major, &minor);
    return major * 1000 + minor;
}

static int table_version;

static void forget_newer(unsigned long first, unsigned long last, const char *age) {
    if (version_number(age) <= table_version) return;
    for (unsigned long c = first; c <= last; c++) expected[c] = CHAR_OTHER;
}

/* "# PropList-15.0.0.txt" -> 15000 */
static int ucd_version(FILE *f) {
    char line[256];
    if (!fgets(line, sizeof line, f) || strncmp(line, "# PropList-", 11) != 0) return 0;
    rewind(f);
    return version_number(line + 11);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s UCD_DIR\n", argv[0]);
        return EXIT_FAILURE;
    }
    FILE *unicode_data = open_ucd(argv[1], "UnicodeData.txt");
    FILE *prop_list = open_ucd(argv[1], "PropList.txt");
    FILE *derived_age = open_ucd(argv[1], "DerivedAge.txt");
    table_version = version_number(unicode_tables_version);
    int local_version = prop_list ? ucd_version(prop_list) : 0;
    bool local_is_older = local_version < table_version;
    if (!unicode_data || !prop_list || (!local_is_older && !derived_age)) {
        printf("skipped: no Unicode Character Database in %s\n", argv[1]);
        return SKIP_EXIT_CODE;
    }
    read_unicode_data(unicode_data);
    read_ranges(prop_list, mark_white_space);
    if (!local_is_older) read_ranges(derived_age, forget_newer);

    long n_checked = 0;
    for (uint32_t c = 0; c < N_CODE_POINTS; c++) {
        if (local_is_older && !assigned[c]) continue;
        n_checked++;
        CHECK(unicode_class_of(c) == expected[c], "U+%04X: class %d, the UCD says %d",
              (unsigned)c, (int)unicode_class_of(c), (int)expected[c]);
    }
    printf("Unicode %s table: %ld code points checked against the UCD %d.%d in %s\n",
           unicode_tables_version, n_checked, local_version / 1000, local_version % 1000,
           argv[1]);

    fclose(unicode_data);
    fclose(prop_list);
    if (derived_age) fclose(derived_age);
    return check_finish("test_tokenizer_unicode");
}
