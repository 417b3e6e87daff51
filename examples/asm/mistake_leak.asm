; mistake_leak.asm: MISTAKE - a memory leak (malloc without free)
;
; What it teaches
;   * Every malloc needs exactly one free. Here three blocks are allocated and only
;     one is freed: the pointers to the other two are overwritten (rax is reused for
;     the next call's result), so nothing can ever free them. In a long-running
;     program that repeats this, memory use grows without bound.
;   * "The OS frees everything at exit" (as one of the documents says) is true for
;     the process, and exactly why leaks go unnoticed in small test programs.
;   * Finding leaks: a leak checker remembers every live block and reports what is
;     still live at exit. oxalloc's hardened build does this with OXALLOC_LEAKS=1.
;   * Without a checker the program runs fine and exits 0: leaks are silent.
;
; Build and run (plain libc link; choose the allocator at run time with LD_PRELOAD)
;   nasm -f elf64 mistake_leak.asm -o mistake_leak.o
;   cc mistake_leak.o -o mistake_leak
;   LD_PRELOAD=path/to/liboxalloc.so ./mistake_leak                # exits 0, silent
;   OXALLOC_LEAKS=1 LD_PRELOAD=path/to/liboxalloc_hardened.so ./mistake_leak
;
; Expected output (exit status 0)
;   allocated 3 blocks (100, 200, 300 bytes), freed 1: 400 bytes leaked
; and, with the hardened library and OXALLOC_LEAKS=1, a report on stderr that
; contains "leaked".

default rel

extern malloc
extern free
extern printf

section .rodata
    f_msg   db "allocated 3 blocks (100, 200, 300 bytes), freed 1: 400 bytes leaked", 10, 0
    f_oom   db "mistake_leak: malloc returned NULL", 10, 0

section .text
global main

main:
    push    rbx                         ; entry 16n+8 -> 16n: aligned for calls

    mov     edi, 100
    call    malloc wrt ..plt
    test    rax, rax
    jz      .oom
    mov     byte [rax], 1               ; block 1 (100 bytes): leaked
    ; BUG: its pointer is not saved anywhere; the next call overwrites rax.

    mov     edi, 200
    call    malloc wrt ..plt            ; block 2 (200 bytes): rax now points here,
    test    rax, rax                    ; block 1 is unreachable = leaked
    jz      .oom
    mov     rbx, rax                    ; this one we keep, and free below

    mov     edi, 300
    call    malloc wrt ..plt            ; block 3 (300 bytes): also never freed
    test    rax, rax
    jz      .oom
    mov     byte [rax], 3

    mov     rdi, rbx
    call    free wrt ..plt              ; the only free

    lea     rdi, [f_msg]
    xor     eax, eax
    call    printf wrt ..plt
    xor     eax, eax                    ; exit status 0: nothing looks wrong
    pop     rbx
    ret

.oom:
    lea     rdi, [f_oom]
    xor     eax, eax
    call    printf wrt ..plt
    mov     eax, 1
    pop     rbx
    ret

section .note.GNU-stack noalloc noexec nowrite progbits
