/*
 * stl_test.cpp: C++ new/delete and the STL on top of oxalloc.
 *
 * Run under LD_PRELOAD=liboxalloc.so and also linked directly against it. Checks:
 *   - std::vector growth to 1M elements, std::string concatenation, std::map and
 *     std::unordered_map with 100k entries (sums and lookups checked);
 *   - std::shared_ptr / std::make_shared / std::unique_ptr across 4 threads;
 *   - over-aligned types (alignas(64), alignas(4096)) through C++17 aligned new,
 *     single objects and arrays, and std::vector of them;
 *   - operator new of a huge size throws std::bad_alloc; nothrow new returns null;
 *     a new_handler is called before the throw (and before nothrow's null), as the
 *     standard says (oxalloc hands a failed request to libstdc++'s operator);
 *   - that the blocks are oxalloc's: liboxalloc.so is in /proc/self/maps
 *     (with --expect-so) and malloc_usable_size(operator new(100)) >= 100; and that
 *     `operator new` and the sized `operator delete` are liboxalloc's own (dladdr,
 *     with --expect-so).
 * Prints "stl_test: N checks passed" and exits 0 only if all checks passed.
 *
 * `stl_test sized-delete-mismatch` deletes a 40-byte block with the size 4000 (another
 * size class): oxalloc must report it and abort.
 */
#include <dlfcn.h>
#include <malloc.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <new>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

static unsigned long checks_run, checks_failed;

#define CHECK(cond, what)                                                              \
    do {                                                                               \
        checks_run++;                                                                  \
        if (!(cond)) {                                                                 \
            checks_failed++;                                                           \
            std::fprintf(stderr, "%s:%d: CHECK(%s) failed: %s\n", __FILE__, __LINE__, \
                         #cond, what);                                                 \
        }                                                                              \
    } while (0)

struct alignas(64) Line {
    std::uint64_t v[8];
};

struct alignas(4096) PageObj {
    char data[5000];
};

static bool oxalloc_mapped()
{
    std::ifstream maps("/proc/self/maps");
    std::string line;
    while (std::getline(maps, line))
        if (line.find("liboxalloc.so") != std::string::npos)
            return true;
    return false;
}

static void containers()
{
    std::vector<std::uint64_t> v;
    for (std::uint64_t i = 0; i < 1000000; i++)
        v.push_back(i * 3);
    std::uint64_t sum = 0;
    for (auto x : v)
        sum += x;
    CHECK(sum == 3ULL * 999999ULL * 1000000ULL / 2, "vector sum");

    std::string s;
    for (int i = 0; i < 20000; i++)
        s += std::to_string(i) + ",";
    CHECK(s.size() == 88890 + 20000, "string length"); // digits of 0..19999, commas
    CHECK(s.compare(0, 8, "0,1,2,3,") == 0, "string prefix");

    std::map<int, std::string> m;
    std::unordered_map<std::string, int> um;
    for (int i = 0; i < 100000; i++) {
        m[i] = "value-" + std::to_string(i);
        um["key-" + std::to_string(i)] = i;
    }
    CHECK(m.size() == 100000 && um.size() == 100000, "map sizes");
    CHECK(m[4242] == "value-4242", "map lookup");
    CHECK(um["key-99999"] == 99999, "unordered_map lookup");
    long long msum = 0;
    for (auto &kv : um)
        msum += kv.second;
    CHECK(msum == 99999LL * 100000LL / 2, "unordered_map sum");
    for (int i = 0; i < 100000; i += 2) {
        m.erase(i);
        um.erase("key-" + std::to_string(i));
    }
    CHECK(m.size() == 50000 && um.size() == 50000, "sizes after erase");
    CHECK(m.begin()->second == "value-1", "map first after erase");
}

static void smart_pointers()
{
    std::vector<std::shared_ptr<std::string>> shared;
    for (int i = 0; i < 10000; i++)
        shared.push_back(std::make_shared<std::string>(std::string(i % 300, 'x')));
    std::atomic<long> total{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; t++) {
        // Each thread copies the shared pointers (reference counts cross threads),
        // allocates its own objects and drops its copies.
        threads.emplace_back([&shared, &total] {
            std::vector<std::shared_ptr<std::string>> mine(shared);
            std::vector<std::unique_ptr<int[]>> arrays;
            long n = 0;
            for (int i = 0; i < 20000; i++) {
                arrays.emplace_back(new int[(i % 50) + 1]());
                n += arrays.back()[0];
                if (arrays.size() > 100)
                    arrays.erase(arrays.begin(), arrays.begin() + 50);
            }
            for (auto &p : mine)
                n += (long)p->size();
            total += n;
        });
    }
    for (auto &th : threads)
        th.join();
    long expect = 0;
    for (int i = 0; i < 10000; i++)
        expect += i % 300;
    CHECK(total == 4 * expect, "shared_ptr string sizes summed in 4 threads");
    CHECK(shared[299].use_count() == 1, "use_count back to 1");
}

static void aligned_new()
{
    std::vector<Line *> lines;
    for (int i = 0; i < 1000; i++) {
        Line *l = new Line();
        CHECK((reinterpret_cast<std::uintptr_t>(l) & 63) == 0, "new alignas(64)");
        l->v[7] = (std::uint64_t)i;
        lines.push_back(l);
    }
    for (int i = 0; i < 1000; i++) {
        CHECK(lines[(size_t)i]->v[7] == (std::uint64_t)i, "alignas(64) object contents");
        delete lines[(size_t)i];
    }
    Line *arr = new Line[777];
    CHECK((reinterpret_cast<std::uintptr_t>(arr) & 63) == 0, "new alignas(64)[]");
    std::memset(static_cast<void *>(arr), 1, sizeof(Line) * 777);
    delete[] arr;
    for (int i = 0; i < 20; i++) {
        PageObj *p = new PageObj;
        CHECK((reinterpret_cast<std::uintptr_t>(p) & 4095) == 0, "new alignas(4096)");
        std::memset(p->data, 2, sizeof p->data);
        delete p;
    }
    std::vector<Line> vl(10000);
    CHECK((reinterpret_cast<std::uintptr_t>(vl.data()) & 63) == 0, "vector<alignas(64)>");
    vl.resize(100000);
    CHECK((reinterpret_cast<std::uintptr_t>(vl.data()) & 63) == 0, "vector<alignas(64)> after resize");
}

static void failures()
{
    bool threw = false;
    try {
        volatile std::size_t huge = SIZE_MAX / 2;
        char *p = new char[huge];
        p[0] = 1;
        delete[] p;
    } catch (const std::bad_alloc &) {
        threw = true;
    }
    CHECK(threw, "new char[SIZE_MAX/2] throws bad_alloc");
    volatile std::size_t huge = SIZE_MAX / 2;
    char *q = new (std::nothrow) char[huge];
    CHECK(q == nullptr, "nothrow new returns null");

    // The new_handler runs when memory runs out, then the throw (it uninstalls itself).
    static int handler_calls;
    handler_calls = 0;
    std::set_new_handler([] {
        handler_calls++;
        std::set_new_handler(nullptr);
    });
    threw = false;
    try {
        void *p = ::operator new(huge);
        ::operator delete(p);
    } catch (const std::bad_alloc &) {
        threw = true;
    }
    CHECK(threw && handler_calls == 1, "operator new calls the new_handler, then throws");
    std::set_new_handler([] {
        handler_calls++;
        std::set_new_handler(nullptr);
    });
    void *r = ::operator new(huge, std::align_val_t(64), std::nothrow);
    CHECK(r == nullptr && handler_calls == 2, "aligned nothrow new calls the new_handler");
}

/// Whether the function at `f` comes from liboxalloc.so.
static bool from_oxalloc(void *f)
{
    Dl_info info;
    return dladdr(f, &info) != 0 && info.dli_fname != nullptr &&
           std::strstr(info.dli_fname, "liboxalloc.so") != nullptr;
}

static void operators_are_oxallocs()
{
    void *(*new_op)(std::size_t) = &::operator new;
    void (*sized_delete)(void *, std::size_t) noexcept = &::operator delete;
    CHECK(from_oxalloc(reinterpret_cast<void *>(new_op)), "operator new is liboxalloc's");
    CHECK(from_oxalloc(reinterpret_cast<void *>(sized_delete)),
          "sized operator delete is liboxalloc's");
}

int main(int argc, char **argv)
{
    if (argc > 1 && std::strcmp(argv[1], "sized-delete-mismatch") == 0) {
        void *p = ::operator new(40);
        ::operator delete(p, 4000);
        std::printf("stl_test: the sized delete went on\n");
        return 0;
    }
    for (int i = 1; i < argc; i++)
        if (std::strcmp(argv[i], "--expect-so") == 0) {
            CHECK(oxalloc_mapped(), "liboxalloc.so is not in /proc/self/maps");
            operators_are_oxallocs();
        }
    void *p = ::operator new(100);
    CHECK(malloc_usable_size(p) >= 100, "operator new's block has a usable size");
    ::operator delete(p);
    containers();
    smart_pointers();
    aligned_new();
    failures();
    if (checks_failed) {
        std::printf("stl_test: %lu of %lu checks FAILED\n", checks_failed, checks_run);
        return 1;
    }
    std::printf("stl_test: %lu checks passed\n", checks_run);
    return 0;
}
