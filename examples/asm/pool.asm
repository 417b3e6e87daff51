; pool.asm: a fixed-block pool allocator through oxalloc's ox_pool_* C ABI
;
; What it teaches
;   * A pool hands out blocks of ONE size. Free blocks sit on a free list, so alloc and
;     free are a pop and a push: no searching, no fragmentation, no per-block header.
;     It suits many objects of the same type (list nodes, particles, requests).
;   * The C ABI (include/oxalloc_typed.h):
;       void *ox_pool_create(size_t block_size, size_t align);   NULL on bad arguments
;       void *ox_pool_alloc(void *pool);                         NULL when out of memory
;       void  ox_pool_free(void *pool, void *block);
;       void  ox_pool_destroy(void *pool);                       frees every block at once
;     The pool handle is an opaque pointer: keep it in a callee-saved register.
;   * Compared with the documents' pool (one flag byte, one 64-byte block, no free and
;     no bounds check), this one grows, frees, reuses, and aligns every block.
;   * The program checks alignment and that no two blocks overlap (each block carries
;     its own index in its first and last qword, checked after all the writes).
;
; Build and run (needs a liboxalloc that exports ox_pool_*)
;   nasm -f elf64 pool.asm -o pool.o
;   cc pool.o path/to/liboxalloc.a -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc -o pool
;   ./pool
;
; Expected output (exit status 0)
;   pool: 48-byte blocks, 16-byte aligned
;   allocated 100 blocks: all 16-byte aligned, none overlapping
;   freed the 50 even-numbered blocks, allocated 50 again: all blocks intact
;   ox_pool_create(48, 3) = NULL (alignment not a power of two): handled
;   pool destroyed

default rel

extern ox_pool_create
extern ox_pool_alloc
extern ox_pool_free
extern ox_pool_destroy
extern printf

BLOCK   equ 48
BLOCK_ALIGN   equ 16
COUNT   equ 100

section .rodata
    f_created db "pool: %d-byte blocks, %d-byte aligned", 10, 0
    f_alloc   db "allocated %d blocks: all %d-byte aligned, none overlapping", 10, 0
    f_reuse   db "freed the 50 even-numbered blocks, allocated 50 again: all blocks intact", 10, 0
    f_badarg  db "ox_pool_create(48, 3) = NULL (alignment not a power of two): handled", 10, 0
    f_destroy db "pool destroyed", 10, 0
    f_nopool  db "pool: ox_pool_create failed", 10, 0
    f_oom     db "pool: ox_pool_alloc returned NULL", 10, 0
    f_misal   db "pool: block %d is misaligned", 10, 0
    f_overlap db "pool: block %d was overwritten (blocks overlap)", 10, 0
    f_accept  db "pool: ox_pool_create accepted alignment 3", 10, 0

section .bss
    blocks  resq COUNT                  ; the block pointers

section .text
global main

; rbx = pool handle, r12 = loop index, r13 = &blocks. 4 pushes + return = 40 bytes;
; sub rsp, 8 -> 48: aligned.
main:
    push    rbp
    mov     rbp, rsp
    push    rbx
    push    r12
    push    r13
    sub     rsp, 8
    lea     r13, [blocks]

    mov     edi, BLOCK
    mov     esi, BLOCK_ALIGN
    call    ox_pool_create wrt ..plt
    test    rax, rax
    jz      .no_pool
    mov     rbx, rax
    lea     rdi, [f_created]
    mov     esi, BLOCK
    mov     edx, BLOCK_ALIGN
    xor     eax, eax
    call    printf wrt ..plt

    ; ---- allocate COUNT blocks; block i holds i in its first and last qword ----
    xor     r12d, r12d
.alloc_loop:
    mov     rdi, rbx
    call    ox_pool_alloc wrt ..plt
    test    rax, rax
    jz      .oom
    test    al, BLOCK_ALIGN - 1
    jnz     .misaligned
    mov     [r13 + r12*8], rax
    mov     [rax], r12
    mov     [rax + BLOCK - 8], r12
    inc     r12d
    cmp     r12d, COUNT
    jb      .alloc_loop
    call    check_all
    test    eax, eax
    jnz     .out_destroy
    lea     rdi, [f_alloc]
    mov     esi, COUNT
    mov     edx, BLOCK_ALIGN
    xor     eax, eax
    call    printf wrt ..plt

    ; ---- give back the even-numbered blocks, then take 50 blocks again ----
    xor     r12d, r12d
.free_loop:
    mov     rdi, rbx
    mov     rsi, [r13 + r12*8]
    call    ox_pool_free wrt ..plt
    mov     qword [r13 + r12*8], 0      ; no dangling pointer left behind
    add     r12d, 2
    cmp     r12d, COUNT
    jb      .free_loop
    xor     r12d, r12d
.realloc_loop:
    mov     rdi, rbx
    call    ox_pool_alloc wrt ..plt
    test    rax, rax
    jz      .oom
    test    al, BLOCK_ALIGN - 1
    jnz     .misaligned
    mov     [r13 + r12*8], rax
    mov     [rax], r12
    mov     [rax + BLOCK - 8], r12
    add     r12d, 2
    cmp     r12d, COUNT
    jb      .realloc_loop
    call    check_all                   ; the odd blocks must be untouched
    test    eax, eax
    jnz     .out_destroy
    lea     rdi, [f_reuse]
    xor     eax, eax
    call    printf wrt ..plt

    ; ---- bad arguments give NULL, not a crash ----
    mov     edi, BLOCK
    mov     esi, 3
    call    ox_pool_create wrt ..plt
    test    rax, rax
    jnz     .accepted
    lea     rdi, [f_badarg]
    xor     eax, eax
    call    printf wrt ..plt

    ; ---- one call frees every block of the pool ----
    mov     rdi, rbx
    call    ox_pool_destroy wrt ..plt
    lea     rdi, [f_destroy]
    xor     eax, eax
    call    printf wrt ..plt
    xor     eax, eax
.out:
    add     rsp, 8
    pop     r13
    pop     r12
    pop     rbx
    pop     rbp
    ret

.out_destroy:                           ; an error was printed: clean up, exit 1
    mov     rdi, rbx
    call    ox_pool_destroy wrt ..plt
    mov     eax, 1
    jmp     .out
.no_pool:
    lea     rdi, [f_nopool]
    xor     eax, eax
    call    printf wrt ..plt
    mov     eax, 1
    jmp     .out
.oom:
    lea     rdi, [f_oom]
    xor     eax, eax
    call    printf wrt ..plt
    jmp     .out_destroy
.misaligned:
    lea     rdi, [f_misal]
    mov     esi, r12d
    xor     eax, eax
    call    printf wrt ..plt
    jmp     .out_destroy
.accepted:
    mov     rdi, rax
    call    ox_pool_destroy wrt ..plt
    lea     rdi, [f_accept]
    xor     eax, eax
    call    printf wrt ..plt
    jmp     .out_destroy

; check_all() -> eax = 0 if every block i still holds i at both ends, else prints
; which one does not and returns 1. Uses only caller-saved registers until printf.
check_all:
    lea     rdx, [blocks]
    xor     ecx, ecx
.next:
    mov     rax, [rdx + rcx*8]
    cmp     [rax], rcx
    jne     .bad
    cmp     [rax + BLOCK - 8], rcx
    jne     .bad
    inc     ecx
    cmp     ecx, COUNT
    jb      .next
    xor     eax, eax
    ret
.bad:
    sub     rsp, 8                      ; entry rsp = 16n+8: realign before the call
    lea     rdi, [f_overlap]
    mov     esi, ecx
    xor     eax, eax
    call    printf wrt ..plt
    add     rsp, 8
    mov     eax, 1
    ret

section .note.GNU-stack noalloc noexec nowrite progbits
