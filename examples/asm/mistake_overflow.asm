; mistake_overflow.asm: MISTAKE - writing past the end of a heap block
;
; What it teaches
;   * malloc(2) gives you 2 bytes. The documents' example then stores a qword
;     (8 bytes) into it: 6 bytes land outside the block you asked for.
;   * Often nothing visible happens: allocators round sizes up to a size class
;     (malloc_usable_size shows the real block size), so small overflows land in
;     slack space. Larger ones overwrite the neighbouring block or the allocator's
;     metadata, and the crash comes later, elsewhere.
;   * A hardened allocator puts a canary right after the requested size and checks it
;     at free: oxalloc's hardened build aborts (SIGABRT) with a report containing
;     "heap overflow".
;   * The fix: allocate the size you store (8 bytes for a qword), and when storing
;     n items compute n * item_size with an overflow check (see realloc_array.asm).
;
; Build and run
;   nasm -f elf64 mistake_overflow.asm -o mistake_overflow.o
;   cc mistake_overflow.o -o mistake_overflow
;   LD_PRELOAD=path/to/liboxalloc_hardened.so ./mistake_overflow   # SIGABRT + report
;   LD_PRELOAD=path/to/liboxalloc.so ./mistake_overflow            # undefined
;
; Expected output
;   "stored 8 bytes into malloc(2)" on stdout, then with the hardened library a report
;   containing "heap overflow" and death by SIGABRT. The default library does not
;   check: the program prints the usable size it happened to get and exits.

default rel

extern malloc
extern free
extern malloc_usable_size
extern printf
extern fflush
extern stdout

section .rodata
    f_stored db "stored 8 bytes into malloc(2)", 10, 0
    f_usable db "malloc_usable_size = %lu: the overflow went unnoticed", 10, 0
    f_oom    db "mistake_overflow: malloc returned NULL", 10, 0

section .text
global main

main:
    push    rbx                         ; 16n
    push    r12                         ; 16n+8
    push    r13                         ; 16n

    mov     edi, 2
    call    malloc wrt ..plt            ; only 2 bytes!
    test    rax, rax
    jz      .oom
    mov     rbx, rax
    mov     rcx, 0x1122334455667788
    mov     [rbx], rcx                  ; BUG: 8-byte store into a 2-byte block

    lea     rdi, [f_stored]
    xor     eax, eax
    call    printf wrt ..plt
    mov     rax, [rel stdout wrt ..got]
    mov     rdi, [rax]
    call    fflush wrt ..plt

    mov     rdi, rbx
    call    malloc_usable_size wrt ..plt
    mov     r12, rax
    mov     rdi, rbx
    call    free wrt ..plt              ; a checking allocator notices here

    lea     rdi, [f_usable]
    mov     rsi, r12
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
