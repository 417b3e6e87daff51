; mistake_garbage.asm: MISTAKE - reading heap memory that was never initialised
;
; What it teaches
;   * malloc does not clear memory. A block may be fresh (zero pages from the
;     kernel) or reused (still holding an earlier object's bytes - here a "secret").
;     Reading it before writing gives garbage values, and may leak data.
;   * Use calloc when you need zeroes, or write every field before reading it.
;   * Seeing the bug: a debugging allocator fills every new block with a junk pattern
;     so that uninitialised reads stand out. With OXALLOC_JUNK=1 oxalloc's hardened
;     build fills with 0xaa, and this program prints 0xaaaaaaaaaaaaaaaa.
;   * Nothing crashes: the program exits 0 under any allocator; only the value it
;     prints changes.
;
; Build and run
;   nasm -f elf64 mistake_garbage.asm -o mistake_garbage.o
;   cc mistake_garbage.o -o mistake_garbage
;   LD_PRELOAD=path/to/liboxalloc.so ./mistake_garbage
;   OXALLOC_JUNK=1 LD_PRELOAD=path/to/liboxalloc_hardened.so ./mistake_garbage
;
; Expected output (exit status 0)
;   uninitialised qword at p+8: 0x<16 hex digits>
; The digits are the stale secret 5ec2e75ec2e75ec2 when the allocator hands the
; freed block back unchanged, 0 on fresh memory, aaaaaaaaaaaaaaaa with junk filling.

default rel

extern malloc
extern free
extern printf

SIZE    equ 64

section .rodata
    f_value db "uninitialised qword at p+8: 0x%016lx", 10, 0
    f_oom   db "mistake_garbage: malloc returned NULL", 10, 0

section .text
global main

main:
    push    rbx                         ; 16n

    ; An earlier object: a block holding a secret, correctly freed.
    mov     edi, SIZE
    call    malloc wrt ..plt
    test    rax, rax
    jz      .oom
    mov     rdi, rax
    mov     rax, 0x5ec2e75ec2e75ec2
    mov     ecx, SIZE / 8
    mov     rbx, rdi
    rep     stosq                       ; fill the block with the secret
    mov     rdi, rbx
    call    free wrt ..plt

    ; A new object of the same size: often the same block.
    mov     edi, SIZE
    call    malloc wrt ..plt
    test    rax, rax
    jz      .oom
    mov     rbx, rax
    lea     rdi, [f_value]
    mov     rsi, [rbx + 8]              ; BUG: read before any write
    xor     eax, eax
    call    printf wrt ..plt
    mov     rdi, rbx
    call    free wrt ..plt
    xor     eax, eax
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
