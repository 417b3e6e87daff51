; malloc_free.asm: heap memory through `call malloc` / `call free`, on oxalloc
;
; What it teaches
;   * Calling the C allocator from assembly: size in rdi, pointer back in rax,
;     `call malloc wrt ..plt` (through the PLT, so the program can be a PIE and the
;     allocator can live in a shared library).
;   * ALWAYS check for NULL: malloc returns 0 and sets errno = ENOMEM when it cannot
;     allocate (shown here with a request for SIZE_MAX bytes).
;   * rax, rcx, rdx, rsi, rdi, r8-r11 are caller-saved: any call (malloc, free, printf)
;     may overwrite them. Keep pointers in callee-saved registers (rbx, r12-r15) or in
;     stack slots. (One of the documents does `mov rdi, rax; call free; mov rbx, [rax]`:
;     besides being a use-after-free, rax is no longer the pointer after the call.)
;   * Store with an explicit size: `mov dword [rax], 0xDEADBEEF`. The documents'
;     `mov [rax], 0xDEADBEEF` does not assemble ("operation size not specified"), and
;     a qword store takes only a sign-extended 32-bit immediate: load 64-bit constants
;     into a register first.
;   * Every malloc has exactly one free; free(NULL) is allowed and does nothing.
;   * oxalloc extras: malloc_usable_size, and ox_stats_print() (statistics on stderr).
;
; Build and run (oxalloc linked in statically, or as a shared library)
;   nasm -f elf64 malloc_free.asm -o malloc_free.o
;   cc malloc_free.o path/to/liboxalloc.a -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc \
;      -o malloc_free
;   cc malloc_free.o -Lpath/to -loxalloc -Wl,-rpath,path/to -o malloc_free_so
;   ./malloc_free
;
; Expected output on stdout (exit status 0); the statistics go to stderr
;   malloc(64): stored 0xdeadbeef, read back 0xdeadbeef
;   usable size >= 64: yes
;   10 blocks of 16..160 bytes: allocated, filled, checked, freed
;   malloc(1 MiB): first and last byte written and read back
;   malloc(SIZE_MAX) = NULL, errno = 12 (ENOMEM): handled
;   free(NULL): no-op
;   all blocks freed
; and on stderr a table starting with "oxalloc: statistics for pid".

default rel

extern malloc
extern free
extern malloc_usable_size
extern printf
extern __errno_location
extern ox_stats_print

NBLOCKS equ 10
BIG     equ 1024 * 1024

section .rodata
    f_small   db "malloc(64): stored 0x%x, read back 0x%x", 10, 0
    f_usable  db "usable size >= 64: %s", 10, 0
    s_yes     db "yes", 0
    s_no      db "no", 0
    f_many    db "%d blocks of 16..160 bytes: allocated, filled, checked, freed", 10, 0
    f_big     db "malloc(1 MiB): first and last byte written and read back", 10, 0
    f_null    db "malloc(SIZE_MAX) = NULL, errno = %d (ENOMEM): handled", 10, 0
    f_freenull db "free(NULL): no-op", 10, 0
    f_done    db "all blocks freed", 10, 0
    f_oom     db "malloc_free: malloc returned NULL unexpectedly", 10, 0
    f_bad     db "malloc_free: memory did not read back what was written", 10, 0
    f_notnull db "malloc_free: malloc(SIZE_MAX) did not return NULL", 10, 0

section .text
global main

; Frame: 6 pushes (rbp, rbx, r12-r15) + return address = 56 bytes; 88 bytes of locals
; (ten 8-byte pointers + 8 of padding) make 144 = 9 * 16: aligned for every call.
;   [rsp + 8*i], i = 0..9: the ten block pointers
main:
    push    rbp
    mov     rbp, rsp
    push    rbx
    push    r12
    push    r13
    push    r14
    push    r15
    sub     rsp, 88

    ; ---- 1. one block: allocate, check, write, read, free ----
    mov     edi, 64
    call    malloc wrt ..plt
    test    rax, rax                    ; NULL?
    jz      .oom
    mov     rbx, rax                    ; keep the pointer in a callee-saved register
    mov     dword [rbx], 0xDEADBEEF     ; explicit size
    mov     rdx, 0x0123456789ABCDEF     ; 64-bit constant: via a register
    mov     [rbx + 8], rdx
    lea     rdi, [f_small]
    mov     esi, 0xDEADBEEF
    mov     edx, dword [rbx]
    xor     eax, eax
    call    printf wrt ..plt
    mov     rdx, 0x0123456789ABCDEF
    cmp     [rbx + 8], rdx
    jne     .bad

    mov     rdi, rbx
    call    malloc_usable_size wrt ..plt
    lea     rsi, [s_yes]
    lea     rdx, [s_no]
    cmp     rax, 64
    cmovb   rsi, rdx
    lea     rdi, [f_usable]
    xor     eax, eax
    call    printf wrt ..plt

    mov     rdi, rbx
    call    free wrt ..plt
    xor     ebx, ebx                    ; forget the pointer: it is dangling now

    ; ---- 2. ten blocks of 16, 32, ..., 160 bytes; block i filled with byte i ----
    xor     r12d, r12d                  ; i
.alloc_loop:
    lea     rdi, [r12 + 1]
    shl     rdi, 4                      ; size = 16 * (i + 1)
    mov     r13, rdi
    call    malloc wrt ..plt
    test    rax, rax
    jz      .oom
    mov     [rsp + r12*8], rax
    mov     rdi, rax                    ; memset by hand: rep stosb fills rcx bytes
    mov     rcx, r13
    mov     eax, r12d
    rep     stosb
    inc     r12d
    cmp     r12d, NBLOCKS
    jb      .alloc_loop

    xor     r12d, r12d                  ; check every byte of every block, then free it
.check_loop:
    mov     r14, [rsp + r12*8]
    lea     rcx, [r12 + 1]
    shl     rcx, 4
.check_byte:
    cmp     byte [r14 + rcx - 1], r12b
    jne     .bad
    dec     rcx
    jnz     .check_byte
    mov     rdi, r14
    call    free wrt ..plt
    mov     qword [rsp + r12*8], 0
    inc     r12d
    cmp     r12d, NBLOCKS
    jb      .check_loop
    lea     rdi, [f_many]
    mov     esi, NBLOCKS
    xor     eax, eax
    call    printf wrt ..plt

    ; ---- 3. a large block (oxalloc maps it directly) ----
    mov     edi, BIG
    call    malloc wrt ..plt
    test    rax, rax
    jz      .oom
    mov     r15, rax
    mov     byte [r15], 0x11
    mov     byte [r15 + BIG - 1], 0x22
    cmp     byte [r15], 0x11
    jne     .bad
    cmp     byte [r15 + BIG - 1], 0x22
    jne     .bad
    lea     rdi, [f_big]
    xor     eax, eax
    call    printf wrt ..plt
    mov     rdi, r15
    call    free wrt ..plt

    ; ---- 4. the NULL path: SIZE_MAX bytes cannot be allocated ----
    mov     rdi, -1
    call    malloc wrt ..plt
    test    rax, rax
    jnz     .not_null
    call    __errno_location wrt ..plt  ; errno is per thread: ask libc where it is
    lea     rdi, [f_null]
    mov     esi, [rax]
    xor     eax, eax
    call    printf wrt ..plt

    ; ---- 5. free(NULL) ----
    xor     edi, edi
    call    free wrt ..plt
    lea     rdi, [f_freenull]
    xor     eax, eax
    call    printf wrt ..plt

    lea     rdi, [f_done]
    xor     eax, eax
    call    printf wrt ..plt

    ; ---- 6. oxalloc's counters, on stderr ----
    call    ox_stats_print wrt ..plt

    xor     eax, eax
.out:
    add     rsp, 88
    pop     r15
    pop     r14
    pop     r13
    pop     r12
    pop     rbx
    pop     rbp
    ret

.oom:
    lea     rdi, [f_oom]
    jmp     .fail
.bad:
    lea     rdi, [f_bad]
    jmp     .fail
.not_null:
    mov     rdi, rax                    ; should never happen; do not leak it anyway
    call    free wrt ..plt
    lea     rdi, [f_notnull]
.fail:
    xor     eax, eax
    call    printf wrt ..plt
    mov     eax, 1
    jmp     .out

section .note.GNU-stack noalloc noexec nowrite progbits
