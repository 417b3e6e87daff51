; brk_heap.asm: a heap made by moving the program break with brk(2) (syscall 12)
;
; What it teaches
;   * The "program break" is the end of the process's data segment. Memory between
;     the initial break and the current one is a heap you own; moving the break up
;     gives you fresh zero-filled pages, moving it down gives them back.
;   * The raw system call is *not* the C library's brk(): it takes the wanted new end
;     in rdi and always returns the break as it is afterwards. brk(0) is an invalid
;     request, so it just returns the current break. There is no -errno: on failure
;     the kernel returns the OLD break, so the only correct check is
;     "returned break >= wanted break". (The documents' example compares with `jle`,
;     a signed compare against the old value; another one adds a *byte* `db 0x1000`
;     - which does not even fit a byte - as a qword.)
;   * Error checks on every call, shrinking back to where we started, and a request
;     the kernel must refuse (a break beyond the stack) to show the failure path.
;   * The break is shared by the whole process: with libc, malloc may move it too,
;     so a program that mixes its own brk with malloc must not assume it is alone.
;     This one has no libc at all (own _start, -nostdlib).
;
; Build and run
;   nasm -f elf64 brk_heap.asm -o brk_heap.o
;   cc -nostdlib -static brk_heap.o -o brk_heap
;   ./brk_heap
;
; Expected output (exit status 0)
;   brk(0): got the current break
;   grew the heap by 65536 bytes
;   new memory reads as zero: yes
;   wrote 8192 qwords 0..8191, sum = 33550336
;   huge request refused, break unchanged: yes
;   shrank the heap back by 65536 bytes
;   break is back where it started: yes

default rel

%define SYS_write 1
%define SYS_brk   12
%define SYS_exit  60

HEAP_BYTES  equ 64 * 1024           ; grow by 64 KiB
QWORDS      equ HEAP_BYTES / 8

section .rodata
    m_start   db "brk(0): got the current break", 10
    m_start_l equ $ - m_start
    m_grew    db "grew the heap by "
    m_grew_l  equ $ - m_grew
    m_bytes   db " bytes", 10
    m_bytes_l equ $ - m_bytes
    m_zero    db "new memory reads as zero: yes", 10
    m_zero_l  equ $ - m_zero
    m_wrote   db "wrote 8192 qwords 0..8191, sum = "
    m_wrote_l equ $ - m_wrote
    m_huge    db "huge request refused, break unchanged: yes", 10
    m_huge_l  equ $ - m_huge
    m_shrank  db "shrank the heap back by "
    m_shrank_l equ $ - m_shrank
    m_back    db "break is back where it started: yes", 10
    m_back_l  equ $ - m_back
    m_fail    db "brk_heap: FAILED: "
    m_fail_l  equ $ - m_fail
    e_grow    db "brk refused to grow the heap", 10
    e_grow_l  equ $ - e_grow
    e_zero    db "fresh brk memory was not zero", 10
    e_zero_l  equ $ - e_zero
    e_sum     db "sum mismatch", 10
    e_sum_l   equ $ - e_sum
    e_huge    db "a huge brk request moved the break", 10
    e_huge_l  equ $ - e_huge
    e_shrink  db "brk did not shrink back", 10
    e_shrink_l equ $ - e_shrink
    nl        db 10

section .bss
    heap_start  resq 1              ; the break when we started (start of our heap)
    heap_end    resq 1              ; the break after growing
    numbuf      resb 24

section .text
global _start

; brk(rdi = wanted break) -> rax = break afterwards. A tiny wrapper so the calls
; below read like C. Clobbers rcx, r11 (syscall).
sys_brk:
    mov     eax, SYS_brk
    syscall
    ret

; print(rsi = buf, rdx = len)
print:
    mov     eax, SYS_write
    mov     edi, 1
    syscall
    ret

; print_u64(rdi = value) in decimal
print_u64:
    mov     rax, rdi
    lea     rsi, [numbuf + 24]
    mov     ecx, 10
.digit:
    xor     edx, edx
    div     rcx
    add     dl, '0'
    dec     rsi
    mov     [rsi], dl
    test    rax, rax
    jnz     .digit
    lea     rdx, [numbuf + 24]
    sub     rdx, rsi
    jmp     print

; fail(rsi = message, rdx = length): print "brk_heap: FAILED: <message>", exit(1)
fail:
    push    rsi
    push    rdx
    lea     rsi, [m_fail]
    mov     edx, m_fail_l
    call    print
    pop     rdx
    pop     rsi
    call    print
    mov     eax, SYS_exit
    mov     edi, 1
    syscall

_start:
    ; ---- 1. where is the break now? ----
    xor     edi, edi                    ; brk(0): "tell me the current break"
    call    sys_brk
    mov     [heap_start], rax
    lea     rsi, [m_start]
    mov     edx, m_start_l
    call    print

    ; ---- 2. grow: ask for start + 64 KiB ----
    mov     rdi, [heap_start]
    add     rdi, HEAP_BYTES
    mov     rbx, rdi                    ; rbx = the break we want (callee-saved, survives)
    call    sys_brk
    cmp     rax, rbx                    ; success iff new break >= wanted (unsigned!)
    jb      .grow_failed
    mov     [heap_end], rax
    lea     rsi, [m_grew]
    mov     edx, m_grew_l
    call    print
    mov     edi, HEAP_BYTES
    call    print_u64
    lea     rsi, [m_bytes]
    mov     edx, m_bytes_l
    call    print

    ; ---- 3. the kernel hands out zero-filled pages ----
    mov     r12, [heap_start]           ; r12 = base of our heap
    xor     eax, eax
    xor     ecx, ecx
.zero:
    or      rax, [r12 + rcx*8]
    inc     rcx
    cmp     rcx, QWORDS
    jb      .zero
    test    rax, rax
    jnz     .not_zero
    lea     rsi, [m_zero]
    mov     edx, m_zero_l
    call    print

    ; ---- 4. use it: heap[i] = i, then sum it back ----
    xor     ecx, ecx
.fill:
    mov     [r12 + rcx*8], rcx
    inc     rcx
    cmp     rcx, QWORDS
    jb      .fill
    xor     eax, eax
    xor     ecx, ecx
.add:
    add     rax, [r12 + rcx*8]
    inc     rcx
    cmp     rcx, QWORDS
    jb      .add
    mov     rdx, QWORDS * (QWORDS - 1) / 2
    cmp     rax, rdx                    ; 0 + 1 + ... + 8191 = 33550336
    jne     .bad_sum
    mov     r13, rax
    lea     rsi, [m_wrote]
    mov     edx, m_wrote_l
    call    print
    mov     rdi, r13
    call    print_u64
    lea     rsi, [nl]
    mov     edx, 1
    call    print

    ; ---- 5. the failure path: a break 128 TiB higher would run into the stack ----
    mov     rdi, [heap_end]
    mov     rax, 1 << 47
    add     rdi, rax
    mov     rbx, rdi
    call    sys_brk
    cmp     rax, rbx
    jae     .huge_granted               ; must not happen
    cmp     rax, [heap_end]             ; on failure brk returns the old break
    jne     .huge_granted
    lea     rsi, [m_huge]
    mov     edx, m_huge_l
    call    print

    ; ---- 6. shrink back: give the 64 KiB to the kernel ----
    mov     rdi, [heap_start]
    call    sys_brk
    cmp     rax, [heap_start]
    jne     .shrink_failed
    lea     rsi, [m_shrank]
    mov     edx, m_shrank_l
    call    print
    mov     edi, HEAP_BYTES
    call    print_u64
    lea     rsi, [m_bytes]
    mov     edx, m_bytes_l
    call    print
    ; (touching [r12] now would be a segfault: those pages are gone)

    ; ---- 7. confirm with brk(0) ----
    xor     edi, edi
    call    sys_brk
    cmp     rax, [heap_start]
    jne     .shrink_failed
    lea     rsi, [m_back]
    mov     edx, m_back_l
    call    print

    mov     eax, SYS_exit
    xor     edi, edi
    syscall

.grow_failed:
    lea     rsi, [e_grow]
    mov     edx, e_grow_l
    jmp     fail
.not_zero:
    lea     rsi, [e_zero]
    mov     edx, e_zero_l
    jmp     fail
.bad_sum:
    lea     rsi, [e_sum]
    mov     edx, e_sum_l
    jmp     fail
.huge_granted:
    lea     rsi, [e_huge]
    mov     edx, e_huge_l
    jmp     fail
.shrink_failed:
    lea     rsi, [e_shrink]
    mov     edx, e_shrink_l
    jmp     fail

section .note.GNU-stack noalloc noexec nowrite progbits
