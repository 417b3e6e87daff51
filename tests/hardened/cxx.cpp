// C++ cases: argv[1] selects a misuse (must abort with a report) or "clean".
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>

struct alignas(64) Wide { char b[64]; };
struct Obj { long a[6]; };

int main(int argc, char **argv) {
    const char *c = argc > 1 ? argv[1] : "clean";
    if (!strcmp(c, "clean")) {
        Obj *o = new Obj;
        delete o;
        Obj *arr = new Obj[10];
        delete[] arr;
        Wide *w = new Wide;
        delete w;
        Wide *wa = new Wide[3];
        delete[] wa;
        void *p = ::operator new(100);
        ::operator delete(p, 100);
        void *n = ::operator new(50, std::nothrow);
        ::operator delete(n, std::nothrow);
        try {
            void *huge = ::operator new((size_t)-1 / 2);
            std::printf("unexpected %p\n", huge);
            return 1;
        } catch (const std::bad_alloc &) {
        }
        if (::operator new((size_t)-1 / 2, std::nothrow) != nullptr) return 1;
        std::puts("cxx clean ok");
        return 0;
    }
    if (!strcmp(c, "sized_delete_wrong")) {
        void *p = ::operator new(48);
        ::operator delete(p, 40);
    } else if (!strcmp(c, "aligned_delete_wrong")) {
        void *p = ::operator new(256, std::align_val_t(64));
        ::operator delete(p, std::align_val_t(128));
    } else if (!strcmp(c, "double_delete")) {
        Obj *o = new Obj;
        delete o;
        delete o;
    } else if (!strcmp(c, "delete_large_wrong_size")) {
        void *p = ::operator new(1 << 20);
        ::operator delete(p, 1000);
    }
    std::puts("survived");
    return 0;
}
