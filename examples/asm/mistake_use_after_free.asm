; mistake_use_after_free.asm: MISTAKE - reading and writing a block after free
;
; What it teaches
;   * After free(p) the block belongs to the allocator again: it may already hold the
;     allocator's own free-list links, or another object. Reading it gives whatever
;     is there; writing it corrupts someone else's data or the allocator itself.
;     (This is the documents' `call free` / `mov rbx, [rax]` example, made to run.)
;   * Nothing stops the CPU: the page is still mapped, so there is no segfault. The
;     damage shows up later, somewhere else - the hardest kind of bug to trace.
;   * A hardened allocator fills freed blocks with a pattern, keeps them in quarantine
;     for a while and checks the pattern before reusing them: oxalloc's hardened
;     build then aborts (SIGABRT) with a report containing "write after free".
;   * The fix: set the pointer to NULL at the free, and do not keep copies of it.
;
; Build and run
;   nasm -f elf64 mistake_use_after_free.asm -o mistake_use_after_free.o
;   cc mistake_use_after_free.o -o mistake_use_after_free
;   LD_PRELOAD=path/to/liboxalloc_hardened.so ./mistake_use_after_free  # SIGABRT + report
;   LD_PRELOAD=path/to/liboxalloc.so ./mistake_use_after_free           # undefined
;
; Expected output
;   "wrote through a dangling pointer" on stdout, then with the hardened library a
;   report containing "write after free" and death by SIGABRT; with the default
;   library the program goes on and may or may not crash.

default rel

extern malloc
extern free
extern printf
extern fflush
extern stdout

SIZE    equ 64
CHURN   equ 1000                        ; allocations made after the bug

section .rodata
    f_wrote db "wrote through a dangling pointer", 10, 0
    f_after db "read back after free: 0x%lx; churned %d more blocks", 10, 0
    f_oom   db "mistake_use_after_free: malloc returned NULL", 10, 0

section .bss
    churn   resq CHURN

section .text
global main

main:
    push    rbx                         ; 16n
    push    r12                         ; 16n+8
    push    r13                         ; 16n

    mov     edi, SIZE
    call    malloc wrt ..plt
    test    rax, rax
    jz      .oom
    mov     rbx, rax
    mov     qword [rbx + 8], 42

    mov     rdi, rbx
    call    free wrt ..plt
    ; BUG: rbx still holds the address and is used below.
    mov     r12, [rbx + 8]              ; read after free: value is unpredictable
    mov     rax, 0x4141414141414141
    mov     [rbx + 8], rax              ; write after free

    lea     rdi, [f_wrote]
    xor     eax, eax
    call    printf wrt ..plt
    mov     rax, [rel stdout wrt ..got]
    mov     rdi, [rax]
    call    fflush wrt ..plt

    ; Keep using the allocator, as a real program would: the freed block is handed
    ; out again at some point, and a checking allocator looks at it then.
    lea     r13, [churn]
    xor     ebx, ebx
.alloc:
    mov     edi, SIZE
    call    malloc wrt ..plt
    mov     [r13 + rbx*8], rax
    inc     ebx
    cmp     ebx, CHURN
    jb      .alloc
    xor     ebx, ebx
.free:
    mov     rdi, [r13 + rbx*8]
    call    free wrt ..plt
    inc     ebx
    cmp     ebx, CHURN
    jb      .free

    lea     rdi, [f_after]
    mov     rsi, r12
    mov     edx, CHURN
    xor     eax, eax
    call    printf wrt ..plt
    xor     eax, eax
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
