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
        void *na = ::operator new[](50, std::nothrow);
        ::operator delete[](na, std::nothrow);
        char *big = new char[1 << 20];
        delete[] big;
        void *z = ::operator new[](0);
        ::operator delete[](z);
        Wide *wn = new (std::nothrow) Wide[2];
        delete[] wn;
        void *m = malloc(10);
        free(m);
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
    } else if (!strcmp(c, "delete_of_new_array")) {
        Obj *a = new Obj[4];
        delete a;
    } else if (!strcmp(c, "delete_array_of_new")) {
        Obj *o = new Obj;
        delete[] o;
    } else if (!strcmp(c, "free_of_new")) {
        Obj *o = new Obj;
        free(o);
    } else if (!strcmp(c, "free_of_new_array")) {
        Obj *a = new Obj[4];
        free(a);
    } else if (!strcmp(c, "delete_of_malloc")) {
        Obj *o = (Obj *)malloc(sizeof(Obj));
        delete o;
    } else if (!strcmp(c, "realloc_of_new")) {
        void *p = ::operator new(48);
        p = realloc(p, 100);
    } else if (!strcmp(c, "delete_of_new_array_large")) {
        char *a = new char[1 << 20];
        delete a;
    } else if (!strcmp(c, "free_of_new_large")) {
        void *p = ::operator new(1 << 20);
        free(p);
    } else if (!strcmp(c, "free_of_new_array_zero")) {
        void *p = ::operator new[](0);
        free(p);
    } else if (!strcmp(c, "delete_array_of_new_nothrow")) {
        void *p = ::operator new(64, std::nothrow);
        ::operator delete[](p, std::nothrow);
    }
    std::puts("survived");
    return 0;
}
