/*
 * An NVTX injection library for tests: NVTX3 loads the shared library named by
 * NVTX_INJECTION64_PATH at the first NVTX call and calls its InitializeInjectionNvtx2 with the
 * calling module's export table, exactly as Nsight does. This one takes over nvtxRangePushA and
 * nvtxRangePop and appends one line per call to the file named by GPT2_NVTX_RECORD:
 *   push NAME
 *   pop
 * Every other NVTX call stays a no-op. Without GPT2_NVTX_RECORD it declines to attach.
 */
#include <stdio.h>
#include <stdlib.h>

#include <nvtx3/nvToolsExt.h>

static FILE *record; /* opened once, at the first module's initialization */

static int record_push(const char *name) {
    fprintf(record, "push %s\n", name);
    return 0;
}

static int record_pop(void) {
    fputs("pop\n", record);
    return 0;
}

/* Points one slot of the core module's table (an array of pointers to function pointers) at f. */
static void install(NvtxFunctionTable core, unsigned size, NvtxCallbackIdCore slot, NvtxFunctionPointer f) {
    if ((unsigned)slot < size && core[slot]) *core[slot] = f;
}

/* Called once per module that uses NVTX; returns 1 when attached, 0 to leave NVTX inert. */
__attribute__((visibility("default"))) int InitializeInjectionNvtx2(NvtxGetExportTableFunc_t get_table) {
    const NvtxExportTableCallbacks *callbacks = get_table(NVTX_ETID_CALLBACKS);
    NvtxFunctionTable core = NULL;
    unsigned size = 0;
    if (!callbacks || callbacks->struct_size < sizeof *callbacks ||
        !callbacks->GetModuleFunctionTable(NVTX_CB_MODULE_CORE, &core, &size) || !core)
        return 0;
    if (!record) {
        const char *path = getenv("GPT2_NVTX_RECORD");
        if (!path || !(record = fopen(path, "w"))) return 0;
        setvbuf(record, NULL, _IOLBF, 0); /* whole lines survive a crash */
    }
    install(core, size, NVTX_CBID_CORE_RangePushA, (NvtxFunctionPointer)record_push);
    install(core, size, NVTX_CBID_CORE_RangePop, (NvtxFunctionPointer)record_pop);
    return 1;
}
