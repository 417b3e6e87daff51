; mistake_double_free.asm: MISTAKE - freeing the same block twice
;
; What it teaches
;   * After free(p), p is dangling. Freeing it again puts the block on the free list
;     a second time, so two later mallocs can return the SAME memory: two "different"
;     objects then overwrite each other. Attackers use exactly this.
;   * The fix: set the pointer to NULL right after free (free(NULL) is a no-op), and
;     give every block one clear owner who frees it.
;   * A hardened allocator keeps a bit per block and stops at the second free: with
;     oxalloc's hardened build the program is killed by SIGABRT with a report that
;     says "double free". What the default build does is undefined: this program
;     prints whether the next two mallocs returned the same block.
;
; Build and run
;   nasm -f elf64 mistake_double_free.asm -o mistake_double_free.o
;   cc mistake_double_free.o -o mistake_double_free
;   LD_PRELOAD=path/to/liboxalloc_hardened.so ./mistake_double_free   # SIGABRT + report
;   LD_PRELOAD=path/to/liboxalloc.so ./mistake_double_free            # undefined
;
; Expected output
;   hardened: "freeing the block twice" on stdout, then "double free" on stderr and
;   death by SIGABRT. Default: the first line, then one line saying whether the next
;   two mallocs returned the same block (allocator-dependent; not an error exit).

default rel

extern malloc
extern free
extern printf
extern fflush
extern stdout

section .rodata
    f_twice db "freeing the block twice", 10, 0
    f_same  db "after the double free, two mallocs returned the same block: %s", 10, 0
    s_yes   db "yes", 0
    s_no    db "no", 0
    f_oom   db "mistake_double_free: malloc returned NULL", 10, 0

section .text
global main

main:
    push    rbx                         ; 16n
    push    r12                         ; 16n+8
    push    r13                         ; 16n: aligned

    mov     edi, 32
    call    malloc wrt ..plt
    test    rax, rax
    jz      .oom
    mov     rbx, rax

    lea     rdi, [f_twice]
    xor     eax, eax
    call    printf wrt ..plt
    mov     rax, [rel stdout wrt ..got] ; flush now: if the allocator aborts below,
    mov     rdi, [rax]                  ; buffered output would be lost
    call    fflush wrt ..plt

    mov     rdi, rbx
    call    free wrt ..plt              ; correct
    mov     rdi, rbx
    call    free wrt ..plt              ; BUG: the same pointer again

    mov     edi, 32                     ; show the consequence
    call    malloc wrt ..plt
    mov     r12, rax
    mov     edi, 32
    call    malloc wrt ..plt
    mov     r13, rax
    lea     rsi, [s_no]
    lea     rdx, [s_yes]
    cmp     r12, r13
    cmove   rsi, rdx
    lea     rdi, [f_same]
    xor     eax, eax
    call    printf wrt ..plt
    xor     eax, eax                    ; do not free r12/r13: they may be one block
    jmp     .out

.oom:
    lea     rdi, [f_oom]
    xor     eax, eax
    call    printf wrt ..plt
    mov     eax, 1
.out:
    pop     r13
    pop     r12
    pop     rbx
    ret

section .note.GNU-stack noalloc noexec nowrite progbits
