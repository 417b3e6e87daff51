; realloc_array.asm: a growable array (a "vector") with realloc, capacity doubling
;
; What it teaches
;   * A dynamic array is three values: pointer, length, capacity. When length reaches
;     capacity, grow the capacity by doubling, so n pushes cost O(n) copying in total
;     (1 + 2 + 4 + ... < 2n) and only about log2(n) realloc calls.
;   * realloc(p, new_size) may move the block: the old contents are copied, the old
;     pointer becomes invalid, and only the returned pointer may be used afterwards.
;   * The safe pattern: `tmp = realloc(p, n); if (!tmp) { free(p); fail; } p = tmp;`.
;     Writing `p = realloc(p, n)` leaks the old block when realloc fails (it returns
;     NULL but the old block is still allocated).
;   * The byte size is count * 8; the overflow of that multiplication is checked
;     (`mul` sets CF/OF when the product does not fit 64 bits) before calling realloc.
;   * realloc(NULL, n) behaves like malloc(n): the first growth needs no special case.
;
; Build and run
;   nasm -f elf64 realloc_array.asm -o realloc_array.o
;   cc realloc_array.o path/to/liboxalloc.a -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc \
;      -o realloc_array
;   ./realloc_array
;
; Expected output (exit status 0)
;   pushed 100000 qwords (1..100000), capacity 131072, 18 reallocs, 14 moves
;   sum = 5000050000 (expected 5000050000)
;   every element still in place after the moves: yes
; (The number of moves depends on the allocator: oxalloc grows large blocks in place
; when it can. The test checks only the first number and the sums.)

default rel

extern realloc
extern free
extern printf

N equ 100000                            ; push 1, 2, ..., N

section .rodata
    f_pushed  db "pushed %ld qwords (1..%ld), capacity %ld, %ld reallocs, %ld moves", 10, 0
    f_sum     db "sum = %ld (expected %ld)", 10, 0
    f_check   db "every element still in place after the moves: yes", 10, 0
    f_oom     db "realloc_array: out of memory", 10, 0
    f_bad     db "realloc_array: element %ld is wrong", 10, 0

section .text
global main

; Registers across the whole function (callee-saved, so they survive the calls):
;   rbx = pointer to the array, r12 = length, r13 = capacity (in elements),
;   r14 = number of realloc calls, r15 = how many of them moved the block.
; 6 pushes + return address = 56 bytes; sub rsp, 8 -> 64: aligned.
main:
    push    rbp
    mov     rbp, rsp
    push    rbx
    push    r12
    push    r13
    push    r14
    push    r15
    sub     rsp, 8

    xor     ebx, ebx                    ; p = NULL
    xor     r12d, r12d                  ; len = 0
    xor     r13d, r13d                  ; cap = 0
    xor     r14d, r14d
    xor     r15d, r15d

.push_loop:
    cmp     r12, r13
    jb      .have_room
    ; ---- grow: new_cap = cap ? 2 * cap : 1 ----
    lea     rax, [r13 + r13]
    mov     ecx, 1
    test    r13, r13
    cmovz   rax, rcx
    mov     r13, rax                    ; (cap is committed only after success, below)
    mov     ecx, 8
    mul     rcx                         ; rdx:rax = new_cap * 8
    jo      .oom                        ; does not fit in 64 bits
    mov     rdi, rbx                    ; realloc(p, new_cap * 8)
    mov     rsi, rax
    call    realloc wrt ..plt
    inc     r14
    test    rax, rax
    jz      .oom                        ; p (rbx) is still valid: freed below
    cmp     rax, rbx
    je      .same
    test    rbx, rbx                    ; the first call (p == NULL) is not a move
    jz      .same
    inc     r15
.same:
    mov     rbx, rax                    ; only now replace p
.have_room:
    lea     rax, [r12 + 1]              ; value = index + 1
    mov     [rbx + r12*8], rax
    inc     r12
    cmp     r12, N
    jb      .push_loop

    lea     rdi, [f_pushed]
    mov     rsi, r12
    mov     rdx, r12
    mov     rcx, r13
    mov     r8, r14
    mov     r9, r15
    xor     eax, eax
    call    printf wrt ..plt

    ; ---- sum the elements ----
    xor     esi, esi
    xor     ecx, ecx
.sum_loop:
    add     rsi, [rbx + rcx*8]
    inc     rcx
    cmp     rcx, r12
    jb      .sum_loop
    lea     rdi, [f_sum]
    mov     rdx, N * (N + 1) / 2
    cmp     rsi, rdx
    jne     .bad_sum
    xor     eax, eax
    call    printf wrt ..plt

    ; ---- every element i must still hold i + 1 after all the copies ----
    xor     ecx, ecx
.check_loop:
    lea     rax, [rcx + 1]
    cmp     [rbx + rcx*8], rax
    jne     .bad_elem
    inc     rcx
    cmp     rcx, r12
    jb      .check_loop
    lea     rdi, [f_check]
    xor     eax, eax
    call    printf wrt ..plt

    mov     rdi, rbx
    call    free wrt ..plt
    xor     eax, eax
.out:
    add     rsp, 8
    pop     r15
    pop     r14
    pop     r13
    pop     r12
    pop     rbx
    pop     rbp
    ret

.oom:
    mov     rdi, rbx                    ; free(p): free(NULL) is fine too
    call    free wrt ..plt
    lea     rdi, [f_oom]
    xor     eax, eax
    call    printf wrt ..plt
    mov     eax, 1
    jmp     .out
.bad_sum:                               ; print the wrong sum, then fail
    xor     eax, eax
    call    printf wrt ..plt
    mov     eax, 1
    jmp     .out
.bad_elem:
    lea     rdi, [f_bad]
    mov     rsi, rcx
    xor     eax, eax
    call    printf wrt ..plt
    mov     eax, 1
    jmp     .out

section .note.GNU-stack noalloc noexec nowrite progbits
