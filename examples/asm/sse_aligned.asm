; sse_aligned.asm: 16-byte alignment for SSE, proven with movaps on heap memory
;
; What it teaches
;   * `movaps` (move aligned packed singles) loads/stores 16 bytes and raises #GP
;     (the program dies with SIGSEGV) if the address is not a multiple of 16.
;     `movups` accepts any address. Using movaps on a pointer is a hard test of its
;     alignment: if this program prints its last line, every access was aligned.
;   * On x86-64 Linux, malloc guarantees 16-byte alignment (alignof(max_align_t)) for
;     every block, so movaps on malloc memory is fine; oxalloc keeps that promise for
;     all sizes, which this program checks for 1..64 bytes.
;   * For more alignment, ask for it: aligned_alloc(align, size) or
;     posix_memalign(&p, align, size) (returns 0 or an error number, never sets
;     errno; the pointer comes back through memory). 64 bytes = one cache line.
;   * In .data/.rodata, `align 16` before a label aligns static vectors.
;   * All xmm registers are caller-saved in the System V ABI: after `call malloc`
;     (or free, printf) their contents are gone. Reload vectors after each call.
;   * Stack slots for SSE need the 16-byte stack rule (see stack.asm).
;
; Build and run
;   nasm -f elf64 sse_aligned.asm -o sse_aligned.o
;   cc sse_aligned.o path/to/liboxalloc.a -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc \
;      -o sse_aligned
;   ./sse_aligned
;
; Expected output (exit status 0)
;   malloc(1..64): all 64 blocks 16-byte aligned, movaps store+load ok (n >= 16)
;   aligned_alloc(16, 256): aligned, 16 vectors added with addps, sum = 160
;   posix_memalign(64, 1024) = 0: pointer mod 64 = 0, movaps on all 64 vectors ok
;   all SSE accesses aligned

default rel

extern malloc
extern free
extern aligned_alloc
extern posix_memalign
extern printf

section .rodata
align 16
    ones      dd 1.0, 2.0, 3.0, 4.0      ; one 16-byte vector: 4 floats
    f_malloc  db "malloc(1..64): all 64 blocks 16-byte aligned, movaps store+load ok (n >= 16)", 10, 0
    f_aligned db "aligned_alloc(16, 256): aligned, 16 vectors added with addps, sum = %d", 10, 0
    f_posix   db "posix_memalign(64, 1024) = %d: pointer mod 64 = %ld, movaps on all 64 vectors ok", 10, 0
    f_done    db "all SSE accesses aligned", 10, 0
    f_misal   db "sse_aligned: pointer %p is not %d-byte aligned", 10, 0
    f_oom     db "sse_aligned: allocation failed", 10, 0
    f_bad     db "sse_aligned: data did not survive the round trip", 10, 0

section .text
global main

; Frame: rbp, rbx, r12, r13 pushed + return address = 40 bytes; sub rsp, 24 -> 64.
;   [rsp]      the pointer posix_memalign writes
main:
    push    rbp
    mov     rbp, rsp
    push    rbx
    push    r12
    push    r13
    sub     rsp, 24

    ; ---- 1. malloc(n) for n = 1..64: each block must be 16-byte aligned ----
    mov     r12d, 1
.malloc_loop:
    mov     edi, r12d
    call    malloc wrt ..plt
    test    rax, rax
    jz      .oom
    mov     rbx, rax
    test    bl, 15                      ; explicit check first, for a clear message
    jnz     .misaligned16
    ; A 16-byte movaps needs n >= 16: for smaller blocks only the address is checked
    ; (touching more than n bytes would be an overflow, whatever the block's real size).
    cmp     r12d, 16
    jb      .skip_store
    movaps  xmm1, [ones]                ; reload after every call: see the header
    movaps  [rbx], xmm1                 ; faults if rbx is misaligned
    movaps  xmm0, [rbx]
    ucomiss xmm0, xmm1                  ; compare the low float as a sanity check
    jne     .bad
.skip_store:
    mov     rdi, rbx
    call    free wrt ..plt
    inc     r12d
    cmp     r12d, 64
    jbe     .malloc_loop
    lea     rdi, [f_malloc]
    xor     eax, eax
    call    printf wrt ..plt

    ; ---- 2. aligned_alloc(16, 256): 16 vectors of 4 floats ----
    mov     edi, 16
    mov     esi, 256
    call    aligned_alloc wrt ..plt
    test    rax, rax
    jz      .oom
    mov     rbx, rax
    mov     r13d, 16
    test    bl, 15
    jnz     .misaligned
    movaps  xmm1, [ones]
    xor     ecx, ecx
.fill16:
    movaps  [rbx + rcx], xmm1           ; each vector = 1.0, 2.0, 3.0, 4.0
    add     ecx, 16
    cmp     ecx, 256
    jb      .fill16
    xorps   xmm0, xmm0                  ; accumulate: xmm0 += vector, 16 times
    xor     ecx, ecx
.add16:
    addps   xmm0, [rbx + rcx]           ; a memory operand of addps must be aligned too
    add     ecx, 16
    cmp     ecx, 256
    jb      .add16
    ; xmm0 = (16.0, 32.0, 48.0, 64.0). Horizontal sum of the 4 lanes, with shuffles:
    ; the total is 16 * (1 + 2 + 3 + 4) = 160.
    movaps  xmm2, xmm0
    shufps  xmm2, xmm2, 0x4E            ; swap the 64-bit halves
    addps   xmm0, xmm2
    movaps  xmm2, xmm0
    shufps  xmm2, xmm2, 0xB1            ; swap neighbouring lanes
    addps   xmm0, xmm2                  ; every lane = total = 160.0
    cvttss2si esi, xmm0
    mov     rdi, rbx
    mov     r12d, esi
    call    free wrt ..plt
    lea     rdi, [f_aligned]
    mov     esi, r12d
    xor     eax, eax
    call    printf wrt ..plt

    ; ---- 3. posix_memalign(&p, 64, 1024): cache-line alignment ----
    mov     rdi, rsp                    ; &p: our stack slot
    mov     esi, 64
    mov     edx, 1024
    call    posix_memalign wrt ..plt
    test    eax, eax                    ; 0 = success, else an error number
    jnz     .oom
    mov     rbx, [rsp]
    mov     r13d, 64
    test    bl, 63
    jnz     .misaligned
    movaps  xmm1, [ones]
    xor     ecx, ecx
.fill64:
    movaps  [rbx + rcx], xmm1
    movaps  xmm0, [rbx + rcx]
    add     ecx, 16
    cmp     ecx, 1024
    jb      .fill64
    mov     rdi, rbx
    call    free wrt ..plt
    lea     rdi, [f_posix]
    xor     esi, esi                    ; the return value we checked above
    mov     rdx, rbx
    and     edx, 63
    xor     eax, eax
    call    printf wrt ..plt

    lea     rdi, [f_done]
    xor     eax, eax
    call    printf wrt ..plt
    xor     eax, eax
.out:
    add     rsp, 24
    pop     r13
    pop     r12
    pop     rbx
    pop     rbp
    ret

.misaligned16:
    mov     r13d, 16
.misaligned:
    lea     rdi, [f_misal]
    mov     rsi, rbx
    mov     edx, r13d
    xor     eax, eax
    call    printf wrt ..plt
    mov     eax, 1
    jmp     .out
.oom:
    lea     rdi, [f_oom]
    jmp     .fail
.bad:
    lea     rdi, [f_bad]
.fail:
    xor     eax, eax
    call    printf wrt ..plt
    mov     eax, 1
    jmp     .out

section .note.GNU-stack noalloc noexec nowrite progbits
