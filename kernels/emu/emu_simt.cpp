/*
 * The SIMT emulator's execution engine: a launch's blocks run in parallel on a persistent pool of
 * worker threads; inside a block every CUDA thread is a fiber that runs from one barrier or warp
 * collective to the next, on a stack of its own.
 *
 * A block runs in rounds. A round resumes each ready thread once, in thread order, or, under the
 * race shaker (GPT2_EMU_SHAKE_SEED), in a seeded permutation that is new for every round; each
 * thread runs until it waits at __syncthreads, at a warp collective, or exits. A warp collective
 * completes as soon as every lane of its mask has arrived; __syncthreads releases when every
 * thread of the block has. Released threads are ready in the next round (under the shaker, the
 * lanes of a completed warp collective may instead rejoin the current round). A round that leaves
 * no thread ready while some have not exited is a deadlock on a GPU: the run stops and says which
 * threads wait for what.
 */
#include "kernels/emu/emu_internal.h"

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__) /* gcc */
#define GPT2_EMU_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) /* clang */
#define GPT2_EMU_ASAN 1
#endif
#endif
#ifdef GPT2_EMU_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <vector>

namespace emu {
namespace {

/* ---- settings ---- */

/* A fiber's stack, and the inaccessible guard below it: an overflow faults at once (up to a
 * frame of the guard's size) and the signal handler names the kernel. */
constexpr size_t fiber_stack_bytes = 256 * 1024;
constexpr size_t fiber_guard_bytes = 64 * 1024;
constexpr size_t signal_stack_bytes = 64 * 1024;
constexpr uint64_t poison_bits = 0x7FFF7FFF7FFF7FFFull;

unsigned long long environment_number(const char *name, unsigned long long fallback,
                                      unsigned long long max) {
    const char *text = getenv(name);
    if (text == nullptr || *text == '\0') return fallback;
    char *end;
    unsigned long long value = strtoull(text, &end, 10);
    if (*end != '\0' || value > max || text[0] == '-') {
        fprintf(stderr, "emu: %s=%s is not a number from 0 to %llu\n", name, text, max);
        exit(EXIT_FAILURE);
    }
    return value;
}

unsigned default_worker_count() {
    cpu_set_t cpus;
    if (sched_getaffinity(0, sizeof cpus, &cpus) == 0) return (unsigned)CPU_COUNT(&cpus);
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    return online > 0 ? (unsigned)online : 1;
}

struct settings {
    unsigned workers;    /* GPT2_EMU_THREADS, default: the CPUs this process may use */
    uint64_t shake_seed; /* GPT2_EMU_SHAKE_SEED, 0: threads resume in order */
};

const settings &config() {
    static const settings value = [] {
        settings s;
        s.workers = (unsigned)environment_number("GPT2_EMU_THREADS", default_worker_count(), 1024);
        if (s.workers == 0) s.workers = default_worker_count();
        s.shake_seed = environment_number("GPT2_EMU_SHAKE_SEED", 0, ~0ull);
        return s;
    }();
    return value;
}

/* splitmix64: the shaker's permutations, a pure function of seed, launch, block and round. */
uint64_t next_random(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* ---- fiber contexts ----
 * On x86-64 a switch is gpt2_emu_switch_stack below: it pushes the callee-saved registers on the
 * current stack, saves the stack pointer, loads the other fiber's and pops the same. swapcontext
 * also saves and restores the signal mask (a system call) and the floating-point control words,
 * and made the emulator several times slower. The fibers of a worker share its control words:
 * device code has no way to change the rounding mode. Elsewhere, or built with
 * -DGPT2_EMU_UCONTEXT, fibers are ucontext contexts. */

#if defined(__x86_64__) && !defined(GPT2_EMU_UCONTEXT)

extern "C" void gpt2_emu_switch_stack(void **save_sp, void *load_sp);
asm(R"(
    .text
    .p2align 4
    .globl gpt2_emu_switch_stack
    .hidden gpt2_emu_switch_stack
    .type gpt2_emu_switch_stack, @function
gpt2_emu_switch_stack:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size gpt2_emu_switch_stack, .-gpt2_emu_switch_stack
)");

struct context {
    void *sp; /* the saved stack pointer, at the frame gpt2_emu_switch_stack pops */
};

void prepare_context(context &) {}

/* A frame that gpt2_emu_switch_stack "returns" into `entry` from, with the stack aligned as at
 * a call: six zeroed registers (rbp = 0 ends the frame chain), entry, and a null return address
 * for entry, which never returns. */
void start_context(context &c, unsigned char *stack, size_t bytes, void (*entry)()) {
    uint64_t *sp = (uint64_t *)((uintptr_t)(stack + bytes) & ~(uintptr_t)15);
    *--sp = 0;
    *--sp = (uint64_t)(uintptr_t)entry;
    for (int i = 0; i < 6; i++) *--sp = 0;
    c.sp = sp;
}

void switch_context(context &save, const context &load) { gpt2_emu_switch_stack(&save.sp, load.sp); }

#else

struct context {
    ucontext_t uc; /* never copied: glibc's ucontext_t points into itself */
};

void prepare_context(context &c) { getcontext(&c.uc); }

void start_context(context &c, unsigned char *stack, size_t bytes, void (*entry)()) {
    c.uc.uc_stack.ss_sp = stack;
    c.uc.uc_stack.ss_size = bytes;
    c.uc.uc_link = nullptr; /* entry never returns */
    makecontext(&c.uc, entry, 0);
}

void switch_context(context &save, const context &load) { swapcontext(&save.uc, &load.uc); }

#endif

/* ---- AddressSanitizer and the fiber switches ----
 * ASan keeps the bounds of the stack each thread runs on: it needs them to unpoison a stack when a
 * noreturn call leaves frames behind, to describe a stack address in a report, and to move stack
 * use-after-return's fake frames with the fiber. A switch to another fiber's stack is therefore
 * announced (start) and completed (finish) around each switch_context: the scheduler's switch into
 * a fiber, a fiber's switch back, and a fiber's last switch, after which its fake frames go. Both
 * switch implementations work under ASan with these (ours does not touch shadow memory;
 * swapcontext's interceptor would unpoison the whole target stack at every switch, so the stack
 * switch of our own stays the default there too). Without ASan these compile to nothing. */

#ifdef GPT2_EMU_ASAN
void asan_start_switch(void **fake_stack_save, const void *bottom, size_t bytes) {
    __sanitizer_start_switch_fiber(fake_stack_save, bottom, bytes);
}
void asan_finish_switch(void *fake_stack, const void **bottom_old, size_t *bytes_old) {
    __sanitizer_finish_switch_fiber(fake_stack, bottom_old, bytes_old);
}
#else
void asan_start_switch(void **, const void *, size_t) {}
void asan_finish_switch(void *, const void **, size_t *) {}
#endif

/* ---- fibers and workers ---- */

enum class fiber_state : uint8_t { ready, at_barrier, at_warp, exited };
enum class barrier_kind : uint8_t { plain, count, all, any };

const char *barrier_name(barrier_kind kind) {
    switch (kind) {
    case barrier_kind::plain: return "__syncthreads()";
    case barrier_kind::count: return "__syncthreads_count()";
    case barrier_kind::all: return "__syncthreads_and()";
    case barrier_kind::any: return "__syncthreads_or()";
    }
    return "?";
}

struct fiber {
    context saved;      /* while the fiber does not run; never moved */
    unsigned char *stack;
    uint3 index;        /* threadIdx */
    unsigned linear;    /* x + y * blockDim.x + z * blockDim.x * blockDim.y; warp = linear / 32 */
    fiber_state state;
    int predicate;      /* at a barrier: this thread's argument (0 or 1), then the result */
    const char *collective; /* at a warp collective: its name, fn, mask and this lane's data */
    warp_fn fn;
    unsigned mask;
    void *data;
    void *asan_fake_stack; /* ASan's fake frames of this fiber while another runs */
};

constexpr unsigned max_warps = max_threads_per_block / 32;

/* One OS thread of the pool, and the block it is running. */
struct worker {
    context scheduler; /* where a fiber switches to when it waits or exits */
    const void *scheduler_stack = nullptr; /* the worker thread's own stack, for ASan */
    size_t scheduler_stack_bytes = 0;
    std::unique_ptr<fiber[]> fibers{new fiber[max_threads_per_block]};
    unsigned char *stacks = nullptr; /* max_threads_per_block slots of [guard][stack] */
    unsigned prepared = 0;           /* fibers whose stack guard and context exist */
    unsigned char *shared_begin = nullptr, *shared_end = nullptr; /* ends at a guard page */
    size_t asan_fenced_bytes = SIZE_MAX; /* the dynamic shared memory ASan now lets kernels use */

    const kernel_launch *launch = nullptr;
    unsigned threads = 0, at_barrier = 0, exited = 0;
    barrier_kind barrier = barrier_kind::plain;
    uint64_t ready[max_threads_per_block / 64]; /* threads ready for the next round, a bit each */
    std::vector<unsigned> round;                /* thread indices, in this round's order */
    size_t round_pos = 0;                       /* the entry of `round` now running */
    unsigned at_warp[max_warps], exited_lanes[max_warps]; /* per warp, a bit per lane */
    unsigned at_activemask = 0; /* threads waiting in __activemask */
    uint64_t random = 0;
    fiber *running = nullptr;
    unsigned char *dynamic_shared = nullptr;
};

thread_local worker *this_worker;

size_t page_bytes() { return (size_t)sysconf(_SC_PAGESIZE); }

size_t stack_slot_bytes() { return fiber_guard_bytes + fiber_stack_bytes; }

void *map_or_die(size_t bytes, const char *what) {
    void *p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
        fprintf(stderr, "emu: cannot map %zu bytes for %s\n", bytes, what);
        exit(EXIT_FAILURE);
    }
    return p;
}

void protect_or_die(void *p, size_t bytes) {
    if (mprotect(p, bytes, PROT_NONE) != 0) {
        fprintf(stderr, "emu: cannot protect a guard page (vm.max_map_count too low for "
                        "GPT2_EMU_THREADS?)\n");
        exit(EXIT_FAILURE);
    }
}

/* The worker's memory: fiber stacks (address space for the largest block, guards made lazily)
 * and its dynamic shared memory, which ends at a guard page so that overrunning it faults. */
void map_worker_memory(worker &w) {
    w.stacks = (unsigned char *)map_or_die(max_threads_per_block * stack_slot_bytes(), "fiber stacks");
    const size_t page = page_bytes();
    const size_t capacity = (optin_dynamic_shared + page - 1) / page * page;
    unsigned char *shared = (unsigned char *)map_or_die(capacity + page, "shared memory");
    w.shared_begin = shared;
    w.shared_end = shared + capacity;
    protect_or_die(w.shared_end, page);
}

bool in_stack_guard(const worker &w, const void *address) {
    const unsigned char *p = (const unsigned char *)address;
    if (p < w.stacks || p >= w.stacks + max_threads_per_block * stack_slot_bytes()) return false;
    return (size_t)(p - w.stacks) % stack_slot_bytes() < fiber_guard_bytes;
}

bool in_shared_guard(const worker &w, const void *address) {
    const unsigned char *p = (const unsigned char *)address;
    return p >= w.shared_end && p < w.shared_end + page_bytes();
}

/* Under ASan, the worker's dynamic shared memory outside the block's [dynamic_shared, + bytes)
 * is poisoned, so that a read or write past the end (into the rounding before the guard page) or
 * before the start is an ASan report naming the kernel. Redone only when the size changes. */
void asan_fence_dynamic_shared(worker &w, size_t bytes) {
#ifdef GPT2_EMU_ASAN
    if (w.asan_fenced_bytes == bytes) return;
    ASAN_POISON_MEMORY_REGION(w.shared_begin, (size_t)(w.shared_end - w.shared_begin));
    ASAN_UNPOISON_MEMORY_REGION(w.dynamic_shared, bytes);
    w.asan_fenced_bytes = bytes;
#else
    (void)w, (void)bytes;
#endif
}

void fiber_main();

/* Stacks and contexts for the first `threads` fibers (kept for later blocks). */
void prepare_fibers(worker &w, unsigned threads) {
    for (; w.prepared < threads; w.prepared++) {
        unsigned char *slot = w.stacks + (size_t)w.prepared * stack_slot_bytes();
        protect_or_die(slot, fiber_guard_bytes);
        fiber &f = w.fibers[w.prepared];
        f.stack = slot + fiber_guard_bytes;
        prepare_context(f.saved);
    }
}

/* ---- faults ---- */

/* Prints "emu: kernel K, block B, thread T: message" for fiber f (or the running one) and ends
 * the process: on a GPU the launch would hang or fault, and nothing sensible can follow. */
[[noreturn]] void vfault_at(const fiber *f, const char *format, va_list args) {
    const worker *w = this_worker;
    if (w != nullptr && w->launch != nullptr) {
        if (f == nullptr) f = w->running;
        fprintf(stderr, "emu: kernel %s, block (%u,%u,%u)", w->launch->name, blockIdx.x, blockIdx.y,
                blockIdx.z);
        if (f != nullptr) fprintf(stderr, ", thread (%u,%u,%u)", f->index.x, f->index.y, f->index.z);
        fputs(": ", stderr);
    } else {
        fputs("emu: ", stderr);
    }
    vfprintf(stderr, format, args);
    fputc('\n', stderr);
    fflush(nullptr);
    _exit(EXIT_FAILURE);
}

[[noreturn]] __attribute__((format(printf, 2, 3))) void fault_at(const fiber *f, const char *format, ...) {
    va_list args;
    va_start(args, format);
    vfault_at(f, format, args);
}

/* The worker and fiber of the calling CUDA thread; `what` called from host code is a fault. */
worker &current(const char *what) {
    worker *w = this_worker;
    if (w == nullptr || w->running == nullptr) fault_at(nullptr, "%s called outside a kernel", what);
    return *w;
}

/* The SIGSEGV and SIGBUS handlers that were there before ours (a sanitizer's, or the default). */
struct sigaction previous_segv, previous_bus;

/* SIGSEGV or SIGBUS inside a kernel: say where, then let the default action end the process.
 * Elsewhere the previous handler takes it (under ASan: its report of the host code's fault). */
void on_memory_fault(int signal_number, siginfo_t *info, void *context) {
    const worker *w = this_worker;
    if (w != nullptr && w->running != nullptr) {
        const char *what = in_stack_guard(*w, info->si_addr)
                               ? "a thread's stack overflowed (256 KiB per thread, see kernels/emu/README.md)"
                           : in_shared_guard(*w, info->si_addr)
                               ? "an access past the end of the block's dynamic shared memory"
                               : "an invalid memory access";
        const fiber &f = *w->running;
        fprintf(stderr, "emu: kernel %s, block (%u,%u,%u), thread (%u,%u,%u): %s at address %p\n",
                w->launch->name, blockIdx.x, blockIdx.y, blockIdx.z, f.index.x, f.index.y,
                f.index.z, what, info->si_addr);
        fflush(nullptr);
    } else {
        const struct sigaction &previous = signal_number == SIGSEGV ? previous_segv : previous_bus;
        if ((previous.sa_flags & SA_SIGINFO) && previous.sa_sigaction != nullptr) {
            previous.sa_sigaction(signal_number, info, context);
            return;
        }
        if (!(previous.sa_flags & SA_SIGINFO) && previous.sa_handler != SIG_DFL &&
            previous.sa_handler != SIG_IGN) {
            previous.sa_handler(signal_number);
            return;
        }
    }
    signal(signal_number, SIG_DFL); /* returning re-runs the access, which now ends the process */
}

/* Installed once, in front of any handler already there, which still gets the faults of host code. */
void install_fault_handlers() {
    for (int signal_number : {SIGSEGV, SIGBUS}) {
        struct sigaction action;
        memset(&action, 0, sizeof action);
        action.sa_sigaction = on_memory_fault;
        action.sa_flags = SA_SIGINFO | SA_ONSTACK;
        sigemptyset(&action.sa_mask);
        sigaction(signal_number, &action, signal_number == SIGSEGV ? &previous_segv : &previous_bus);
    }
}

#ifdef GPT2_EMU_ASAN
/* ASan calls this just before it prints a report: when a kernel is running on this thread, a line
 * names it, its block and its thread (the report's stack shows the kernel's source line). */
void asan_report_names_kernel() {
    const worker *w = this_worker;
    if (w == nullptr || w->running == nullptr || w->launch == nullptr) return;
    char line[512];
    const int n = snprintf(line, sizeof line,
                           "emu: AddressSanitizer stopped kernel %s, block (%u,%u,%u), thread "
                           "(%u,%u,%u); its report follows\n",
                           w->launch->name, blockIdx.x, blockIdx.y, blockIdx.z, w->running->index.x,
                           w->running->index.y, w->running->index.z);
    if (n > 0) (void)!write(STDERR_FILENO, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}
#endif

/* ---- the block scheduler ---- */

void resume(worker &w, fiber &f) {
    w.running = &f;
    threadIdx = f.index;
    void *scheduler_fake_stack = nullptr;
    asan_start_switch(&scheduler_fake_stack, f.stack, fiber_stack_bytes);
    switch_context(w.scheduler, f.saved);
    asan_finish_switch(scheduler_fake_stack, nullptr, nullptr);
    w.running = nullptr;
}

/* From a fiber: back to the scheduler until it resumes this thread. */
void wait_here(worker &w) {
    fiber &f = *w.running;
    asan_start_switch(&f.asan_fake_stack, w.scheduler_stack, w.scheduler_stack_bytes);
    switch_context(f.saved, w.scheduler);
    asan_finish_switch(f.asan_fake_stack, &w.scheduler_stack, &w.scheduler_stack_bytes);
}

void release(worker &w, fiber &f) {
    f.state = fiber_state::ready;
    w.ready[f.linear / 64] |= 1ull << (f.linear % 64);
}

/*
 * The lanes of a completed warp collective. Without the shaker they are ready in the next round.
 * Under it, half of the time (by the seed) they rejoin the current round at random places after
 * the running thread instead, so a warp can run ahead of the others past its collective: without
 * this a collective would order shared-memory accesses between warps like a block barrier, and a
 * missing __syncthreads next to a shuffle would go unseen.
 */
void release_collective(worker &w, unsigned base, unsigned mask) {
    if (config().shake_seed == 0 || next_random(&w.random) % 2 == 0) {
        for (unsigned m = mask; m != 0; m &= m - 1) release(w, w.fibers[base + __builtin_ctz(m)]);
        return;
    }
    for (unsigned m = mask; m != 0; m &= m - 1) {
        fiber &f = w.fibers[base + __builtin_ctz(m)];
        f.state = fiber_state::ready;
        const size_t later = w.round.size() - w.round_pos; /* slots after the running entry */
        w.round.insert(w.round.begin() + (ptrdiff_t)(w.round_pos + 1 + next_random(&w.random) % later), f.linear);
    }
}

/* The next round: the ready threads in thread order, or under the shaker in a fresh seeded
 * permutation: every thread interleaved, or (every other round, by the seed) whole warps one
 * after another in a random order, so that a warp can finish a collective and run on before
 * another warp has started. False when no thread is ready. */
bool next_round(worker &w) {
    w.round.clear();
    for (unsigned word = 0; word < (w.threads + 63) / 64; word++) {
        for (uint64_t bits = w.ready[word]; bits != 0; bits &= bits - 1)
            w.round.push_back(word * 64 + (unsigned)__builtin_ctzll(bits));
        w.ready[word] = 0;
    }
    if (config().shake_seed == 0) return !w.round.empty();
    for (size_t i = w.round.size(); i > 1; i--)
        std::swap(w.round[i - 1], w.round[next_random(&w.random) % i]);
    if (next_random(&w.random) % 2 == 0) { /* warps one after another, in a random order */
        uint64_t warp_rank[max_threads_per_block / 32];
        for (unsigned warp = 0; warp < (w.threads + 31) / 32; warp++) warp_rank[warp] = next_random(&w.random);
        std::stable_sort(w.round.begin(), w.round.end(), [&](unsigned a, unsigned b) {
            return warp_rank[a / 32] < warp_rank[b / 32];
        });
    }
    return !w.round.empty();
}

const char *describe_wait(const fiber &f, char *text, size_t size) {
    if (f.state == fiber_state::exited) return "has exited";
    if (f.state == fiber_state::at_barrier) return "waits at __syncthreads()";
    if (f.state == fiber_state::ready) return "is running";
    snprintf(text, size, "waits at %s with mask 0x%08x", f.collective, f.mask);
    return text;
}

/* No thread is ready and some have not exited: find a waiting lane whose partner never comes. */
[[noreturn]] void fault_deadlock(worker &w) {
    for (unsigned t = 0; t < w.threads; t++) {
        const fiber &f = w.fibers[t];
        if (f.state != fiber_state::at_warp) continue;
        const unsigned base = t - t % warpSize;
        for (unsigned m = f.mask; m != 0; m &= m - 1) {
            const fiber &other = w.fibers[base + __builtin_ctz(m)];
            if (other.state == fiber_state::at_warp && other.fn == f.fn && other.mask == f.mask) continue;
            char text[96];
            fault_at(&f, "deadlock: %s (mask 0x%08x) in warp %u waits for lane %u, which %s "
                         "(%u of %u threads wait at __syncthreads())",
                     f.collective, f.mask, t / warpSize, (unsigned)__builtin_ctz(m),
                     describe_wait(other, text, sizeof text), w.at_barrier, w.threads);
        }
    }
    fault_at(nullptr, "deadlock: no thread of the block can run (%u of %u wait at __syncthreads(), "
                      "%u exited)", w.at_barrier, w.threads, w.exited);
}

/* A barrier with waiting threads and exited ones: the waiters can never be released. */
[[noreturn]] void fault_barrier_unreachable(worker &w) {
    const fiber *waiting = nullptr, *gone = nullptr;
    for (unsigned t = 0; t < w.threads; t++) {
        const fiber &f = w.fibers[t];
        if (f.state == fiber_state::at_barrier && waiting == nullptr) waiting = &f;
        if (f.state == fiber_state::exited && gone == nullptr) gone = &f;
    }
    const fiber &named = gone != nullptr ? *gone : *w.running;
    fault_at(waiting, "divergent barrier: %u of %u threads wait at %s, but %u exited without "
                      "reaching it (thread (%u,%u,%u) among them)",
             w.at_barrier, w.threads, barrier_name(w.barrier), w.exited, named.index.x,
             named.index.y, named.index.z);
}

/* Marks a lane waiting in __activemask (never called). */
void activemask_fn(void *const *, unsigned) {}

/*
 * After a round: in each warp where no lane is ready, the lanes waiting in __activemask get the
 * set of them as their answer. The warp's other live lanes wait elsewhere (diverged) by then, so
 * converged code sees every live lane, and a branch sees the lanes that took it.
 */
void resolve_activemask(worker &w) {
    for (unsigned warp = 0; warp < (w.threads + 31) / 32; warp++) {
        unsigned waiting = 0;
        for (unsigned m = w.at_warp[warp]; m != 0; m &= m - 1)
            if (w.fibers[warp * 32 + __builtin_ctz(m)].fn == activemask_fn) waiting |= 1u << __builtin_ctz(m);
        const unsigned ready = (unsigned)(w.ready[warp / 2] >> (warp % 2 * 32));
        if (waiting == 0 || ready != 0) continue;
        for (unsigned m = waiting; m != 0; m &= m - 1) {
            fiber &f = w.fibers[warp * 32 + __builtin_ctz(m)];
            *(unsigned *)f.data = waiting;
            release(w, f);
        }
        w.at_warp[warp] &= ~waiting;
        w.at_activemask -= (unsigned)__builtin_popcount(waiting);
    }
}

void run_block(worker &w, const kernel_launch &launch, uint64_t linear, uint64_t launch_serial) {
    const dim3 grid = launch.grid, block = launch.block;
    blockIdx = {(unsigned)(linear % grid.x), (unsigned)(linear / grid.x % grid.y),
                (unsigned)(linear / ((uint64_t)grid.x * grid.y))};
    w.launch = &launch;
    w.threads = block.x * block.y * block.z;
    w.at_barrier = w.exited = w.at_activemask = 0;
    w.random = config().shake_seed ^ (launch_serial * 0xD6E8FEB86659FD93ull) ^
               (linear * 0xA0761D6478BD642Full);
    prepare_fibers(w, w.threads);
    w.dynamic_shared = w.shared_end - (launch.shared_bytes + 15) / 16 * 16;
    asan_fence_dynamic_shared(w, launch.shared_bytes);
    poison(w.dynamic_shared, launch.shared_bytes);

    memset(w.ready, 0, sizeof w.ready);
    memset(w.at_warp, 0, sizeof w.at_warp);
    memset(w.exited_lanes, 0, sizeof w.exited_lanes);
    for (unsigned t = 0; t < w.threads; t++) {
        fiber &f = w.fibers[t];
        f.index = {t % block.x, t / block.x % block.y, t / (block.x * block.y)};
        f.linear = t;
        f.asan_fake_stack = nullptr;
        start_context(f.saved, f.stack, fiber_stack_bytes, fiber_main);
        release(w, f);
    }
    while (w.exited < w.threads) {
        if (!next_round(w)) fault_deadlock(w);
        for (w.round_pos = 0; w.round_pos < w.round.size(); w.round_pos++)
            resume(w, w.fibers[w.round[w.round_pos]]);
        if (w.at_activemask > 0) resolve_activemask(w);
    }
    w.launch = nullptr;
}

/* A thread has returned from the kernel; nobody may still wait for it. */
void thread_exited(worker &w) {
    fiber &f = *w.running;
    f.state = fiber_state::exited;
    w.exited++;
    if (w.at_barrier > 0) fault_barrier_unreachable(w);
    const unsigned warp = f.linear / warpSize, lane = f.linear % warpSize;
    w.exited_lanes[warp] |= 1u << lane;
    for (unsigned m = w.at_warp[warp]; m != 0; m &= m - 1) {
        const fiber &other = w.fibers[warp * warpSize + __builtin_ctz(m)];
        if (other.mask >> lane & 1)
            fault_at(&other, "%s (mask 0x%08x) waits for lane %u, which has exited",
                     other.collective, other.mask, lane);
    }
}

/* A fiber's first frame: one CUDA thread of the kernel, then back to the scheduler for good. */
void fiber_main() {
    worker &w = *this_worker;
    asan_finish_switch(nullptr, &w.scheduler_stack, &w.scheduler_stack_bytes);
    w.launch->body();
    thread_exited(w);
    asan_start_switch(nullptr, w.scheduler_stack, w.scheduler_stack_bytes); /* for good */
    switch_context(w.running->saved, w.scheduler);
    __builtin_unreachable();
}

/* ---- the worker pool ---- */

struct pool {
    std::mutex mutex;
    std::condition_variable wake, finished;
    std::mutex launching; /* one launch at a time */
    unsigned workers = 0;
    uint64_t generation = 0; /* one per launch */
    const kernel_launch *job = nullptr;
    uint64_t blocks = 0, serial = 0;
    uint64_t stride = 1, offset = 0; /* block order: (stride * i + offset) mod blocks */
    std::atomic<uint64_t> next_block{0};
    unsigned busy = 0;
};

pool *the_pool;
std::once_flag fork_handler_once;

uint64_t block_at(const pool &p, uint64_t i) {
    return (uint64_t)(((unsigned __int128)p.stride * i + p.offset) % p.blocks);
}

void *worker_main(void *arg) {
    pool &p = *(pool *)arg;
    worker *w = new worker; /* lives as long as the process */
    this_worker = w;
    map_worker_memory(*w);
    stack_t signal_stack;
    signal_stack.ss_sp = map_or_die(signal_stack_bytes, "a signal stack");
    signal_stack.ss_size = signal_stack_bytes;
    signal_stack.ss_flags = 0;
    sigaltstack(&signal_stack, nullptr);
    uint64_t seen = 0;
    for (;;) {
        std::unique_lock<std::mutex> lock(p.mutex);
        p.wake.wait(lock, [&] { return p.generation != seen; });
        seen = p.generation;
        const kernel_launch &launch = *p.job;
        const uint64_t serial = p.serial;
        lock.unlock();
        blockDim = launch.block;
        gridDim = launch.grid;
        for (uint64_t i; (i = p.next_block.fetch_add(1)) < p.blocks;)
            run_block(*w, launch, block_at(p, i), serial);
        lock.lock();
        if (--p.busy == 0) p.finished.notify_all();
    }
    return nullptr;
}

/* A forked child has none of the parent's worker threads: it starts a pool of its own. */
void forget_pool_in_child() { the_pool = nullptr; }

pool &get_pool() {
    std::call_once(fork_handler_once, [] { pthread_atfork(nullptr, nullptr, forget_pool_in_child); });
    if (the_pool != nullptr) return *the_pool;
    install_fault_handlers();
    pool *p = new pool;
    p->workers = config().workers;
    for (unsigned i = 0; i < p->workers; i++) {
        pthread_t thread;
        if (pthread_create(&thread, nullptr, worker_main, p) != 0) {
            fprintf(stderr, "emu: cannot start worker thread %u of %u\n", i, p->workers);
            exit(EXIT_FAILURE);
        }
        pthread_detach(thread);
    }
    the_pool = p;
    return *p;
}

uint64_t gcd(uint64_t a, uint64_t b) {
    while (b != 0) {
        const uint64_t remainder = a % b;
        a = b;
        b = remainder;
    }
    return a;
}

/* ---- warp collectives ---- */

struct shuffle_lane {
    uint64_t value, result;
    unsigned operand; /* srcLane, delta or laneMask */
    int width;
};

/* PTX shfl.sync: lanes form segments of `width`; a source outside the caller's segment (up,
 * down, or a later segment for bfly) gives the caller's own value; a source lane outside the
 * mask is undefined on a GPU and reads as the poison pattern here. */
template <shuffle_mode mode>
void shuffle_fn(void *const lanes[32], unsigned mask) {
    for (unsigned m = mask; m != 0; m &= m - 1) {
        const unsigned lane = __builtin_ctz(m);
        shuffle_lane &me = *(shuffle_lane *)lanes[lane];
        const unsigned segment = lane & ~(unsigned)(me.width - 1), last = segment + me.width - 1;
        const unsigned b = me.operand & 31;
        unsigned source = lane;
        if (mode == shuffle_mode::index) source = segment + (b & (me.width - 1));
        if (mode == shuffle_mode::up && lane >= segment + b) source = lane - b;
        if (mode == shuffle_mode::down && lane + b <= last) source = lane + b;
        if (mode == shuffle_mode::bfly && (lane ^ b) <= last) source = lane ^ b;
        me.result = (mask >> source & 1) ? ((shuffle_lane *)lanes[source])->value : poison_bits;
    }
}

struct vote_lane {
    int predicate;
    unsigned result;
};

void ballot_fn(void *const lanes[32], unsigned mask) {
    unsigned votes = 0;
    for (unsigned m = mask; m != 0; m &= m - 1)
        if (((vote_lane *)lanes[__builtin_ctz(m)])->predicate) votes |= 1u << __builtin_ctz(m);
    for (unsigned m = mask; m != 0; m &= m - 1) ((vote_lane *)lanes[__builtin_ctz(m)])->result = votes;
}

struct reduce_lane {
    unsigned value, result;
};

template <reduce_op op>
unsigned combine(unsigned a, unsigned b) {
    switch (op) {
    case reduce_op::add: return a + b;
    case reduce_op::min_signed: return (int)a < (int)b ? a : b;
    case reduce_op::max_signed: return (int)a > (int)b ? a : b;
    case reduce_op::min_unsigned: return a < b ? a : b;
    case reduce_op::max_unsigned: return a > b ? a : b;
    case reduce_op::and_: return a & b;
    case reduce_op::or_: return a | b;
    case reduce_op::xor_: return a ^ b;
    }
    return 0;
}

template <reduce_op op>
void reduce_fn(void *const lanes[32], unsigned mask) {
    unsigned total = ((reduce_lane *)lanes[__builtin_ctz(mask)])->value;
    for (unsigned m = mask & (mask - 1); m != 0; m &= m - 1)
        total = combine<op>(total, ((reduce_lane *)lanes[__builtin_ctz(m)])->value);
    for (unsigned m = mask; m != 0; m &= m - 1) ((reduce_lane *)lanes[__builtin_ctz(m)])->result = total;
}

void syncwarp_fn(void *const *, unsigned) {}

/* ---- block barriers ---- */

int block_barrier(barrier_kind kind, int predicate) {
    worker &w = current(barrier_name(kind));
    fiber &f = *w.running;
    if (w.at_barrier > 0 && w.barrier != kind)
        fault_at(&f, "%s reached while %u threads wait at %s", barrier_name(kind), w.at_barrier,
                 barrier_name(w.barrier));
    w.barrier = kind;
    f.state = fiber_state::at_barrier;
    f.predicate = predicate != 0;
    w.at_barrier++;
    if (w.exited > 0) fault_barrier_unreachable(w);
    if (w.at_barrier == w.threads) {
        int count = 0;
        for (unsigned t = 0; t < w.threads; t++) count += w.fibers[t].predicate;
        const int result = kind == barrier_kind::count ? count
                           : kind == barrier_kind::all ? count == (int)w.threads
                           : kind == barrier_kind::any ? count > 0
                                                       : 0;
        for (unsigned t = 0; t < w.threads; t++) {
            w.fibers[t].predicate = result;
            release(w, w.fibers[t]);
        }
        w.at_barrier = 0;
    }
    wait_here(w);
    return f.predicate;
}

} // namespace

/* ---- the interface: emu.h, emu_device.h, emu_internal.h ---- */

void run_grid(const kernel_launch &launch) {
    if (this_worker != nullptr) fault_at(nullptr, "a kernel launched %s: dynamic parallelism is not emulated", launch.name);
    pool &p = get_pool();
    std::lock_guard<std::mutex> one_launch(p.launching);
    std::unique_lock<std::mutex> lock(p.mutex);
    p.job = &launch;
    p.blocks = (uint64_t)launch.grid.x * launch.grid.y * launch.grid.z;
    p.serial++;
    p.stride = 1;
    p.offset = 0;
    if (config().shake_seed != 0) { /* the shaker also starts blocks in a seeded order */
        uint64_t random = config().shake_seed ^ p.serial;
        p.offset = next_random(&random) % p.blocks;
        p.stride = next_random(&random) % p.blocks;
        while (gcd(p.stride, p.blocks) != 1) p.stride++;
    }
    p.next_block = 0;
    p.busy = p.workers;
    p.generation++;
    p.wake.notify_all();
    p.finished.wait(lock, [&] { return p.busy == 0; });
}

void fault(const char *format, ...) {
    va_list args;
    va_start(args, format);
    vfault_at(nullptr, format, args);
}

void warp_collective(const char *name, unsigned mask, warp_fn fn, void *data) {
    worker &w = current(name);
    fiber &f = *w.running;
    const unsigned warp = f.linear / warpSize, lane = f.linear % warpSize, base = warp * warpSize;
    const unsigned lanes_in_warp = std::min(w.threads - base, (unsigned)warpSize);
    const unsigned existing = lanes_in_warp == 32 ? ~0u : (1u << lanes_in_warp) - 1;
    if (!(mask >> lane & 1))
        fault_at(&f, "%s: mask 0x%08x does not name the calling lane %u", name, mask, lane);
    if (mask & ~existing)
        fault_at(&f, "%s: mask 0x%08x names lane %d of warp %u, which does not exist (the block has "
                     "%u threads)", name, mask, __builtin_ctz(mask & ~existing), warp, w.threads);
    if (mask & w.exited_lanes[warp])
        fault_at(&f, "%s: mask 0x%08x names lane %d of warp %u, which has exited", name, mask,
                 __builtin_ctz(mask & w.exited_lanes[warp]), warp);
    f.state = fiber_state::at_warp;
    f.collective = name;
    f.fn = fn;
    f.mask = mask;
    f.data = data;
    w.at_warp[warp] |= 1u << lane;
    if ((w.at_warp[warp] & mask) != mask) { /* a later lane completes the collective */
        wait_here(w);
        return;
    }
    void *lanes[32] = {};
    for (unsigned m = mask; m != 0; m &= m - 1) {
        const fiber &other = w.fibers[base + __builtin_ctz(m)];
        if (other.fn != fn || other.mask != mask) { /* waits elsewhere: may come back later */
            wait_here(w);
            return;
        }
        lanes[__builtin_ctz(m)] = other.data;
    }
    fn(lanes, mask);
    w.at_warp[warp] &= ~mask;
    release_collective(w, base, mask);
    wait_here(w);
}

uint64_t shuffle(const char *name, shuffle_mode mode, unsigned mask, uint64_t bits,
                 unsigned lane_operand, int width) {
    if (width < 1 || width > warpSize || (width & (width - 1)) != 0)
        fault("%s: width %d is not a power of two from 1 to 32", name, width);
    shuffle_lane me = {bits, 0, lane_operand, width};
    const warp_fn fn = mode == shuffle_mode::index ? shuffle_fn<shuffle_mode::index>
                       : mode == shuffle_mode::up  ? shuffle_fn<shuffle_mode::up>
                       : mode == shuffle_mode::down ? shuffle_fn<shuffle_mode::down>
                                                    : shuffle_fn<shuffle_mode::bfly>;
    warp_collective(name, mask, fn, &me);
    return me.result;
}

unsigned ballot(const char *name, unsigned mask, int predicate) {
    vote_lane me = {predicate != 0, 0};
    warp_collective(name, mask, ballot_fn, &me);
    return me.result;
}

unsigned reduce(const char *name, reduce_op op, unsigned mask, unsigned value) {
    reduce_lane me = {value, 0};
    warp_fn fn = nullptr;
    switch (op) {
    case reduce_op::add: fn = reduce_fn<reduce_op::add>; break;
    case reduce_op::min_signed: fn = reduce_fn<reduce_op::min_signed>; break;
    case reduce_op::max_signed: fn = reduce_fn<reduce_op::max_signed>; break;
    case reduce_op::min_unsigned: fn = reduce_fn<reduce_op::min_unsigned>; break;
    case reduce_op::max_unsigned: fn = reduce_fn<reduce_op::max_unsigned>; break;
    case reduce_op::and_: fn = reduce_fn<reduce_op::and_>; break;
    case reduce_op::or_: fn = reduce_fn<reduce_op::or_>; break;
    case reduce_op::xor_: fn = reduce_fn<reduce_op::xor_>; break;
    }
    warp_collective(name, mask, fn, &me);
    return me.result;
}

} // namespace emu

void __syncthreads(void) { emu::block_barrier(emu::barrier_kind::plain, 0); }
int __syncthreads_count(int predicate) { return emu::block_barrier(emu::barrier_kind::count, predicate); }
int __syncthreads_and(int predicate) { return emu::block_barrier(emu::barrier_kind::all, predicate); }
int __syncthreads_or(int predicate) { return emu::block_barrier(emu::barrier_kind::any, predicate); }

void __syncwarp(unsigned mask) { emu::warp_collective("__syncwarp", mask, emu::syncwarp_fn, nullptr); }

unsigned __activemask(void) {
    emu::worker &w = emu::current("__activemask");
    emu::fiber &f = *w.running;
    unsigned active = 0;
    f.state = emu::fiber_state::at_warp;
    f.collective = "__activemask";
    f.fn = emu::activemask_fn;
    f.mask = 0; /* waits for nobody: resolve_activemask answers it */
    f.data = &active;
    w.at_warp[f.linear / warpSize] |= 1u << (f.linear % warpSize);
    w.at_activemask++;
    emu::wait_here(w);
    return active;
}

void *emu_dynamic_shared(void) { return emu::current("DYNAMIC_SHARED").dynamic_shared; }

#ifdef GPT2_EMU_ASAN
/* ASan's weak hook, called at every report before it is printed. */
extern "C" void __asan_on_error(void) { emu::asan_report_names_kernel(); }
#endif
