; stack.asm: the stack - push/pop, stack frames, locals, and an aligned call into libc
;
; What it teaches
;   * push/pop in 64-bit mode move 8 bytes and are last-in first-out. (The documents
;     use `push eax` and `int 0x80`: in 64-bit code `push eax` does not assemble, and
;     int 0x80 is the 32-bit system call ABI, which truncates pointers to 32 bits.)
;   * A function frame: `push rbp; mov rbp, rsp; sub rsp, N` reserves N bytes of locals
;     at [rbp-8], [rbp-16], ...; `leave` (= mov rsp, rbp; pop rbp) frees them.
;     Locals are NOT zeroed: the stack holds whatever the last function left there.
;   * THE ALIGNMENT RULE (System V x86-64 ABI): at the `call` instruction, rsp must be
;     a multiple of 16. The call pushes the 8-byte return address, so on entry to any
;     function rsp is 16n+8. Hence the usual prologue: `push rbp` (8 bytes) brings it
;     back to 16n, and every later `sub rsp, N` / push must keep the total a multiple
;     of 16 before the next call. libc may use SSE instructions such as movaps on
;     stack slots; a misaligned call can crash deep inside printf. None of the
;     documents' examples mention this.
;   * Variadic functions (printf) also want al = the number of vector registers used
;     for arguments (0 here).
;   * A recursive function: each call gets its own frame (factorial).
;   * The program checks its own rsp before every call into libc (macro CCALL) and
;     exits with status 2 if the rule is broken.
;
; Build and run (needs libc only: nothing here calls malloc)
;   nasm -f elf64 stack.asm -o stack.o
;   cc stack.o -o stack
;   ./stack
;
; Expected output (exit status 0)
;   pushed 1, 2, 3; popped 3, 2, 1
;   after 3 pushes rsp mod 16 = 8 (a call now would break the rule)
;   after the pops rsp mod 16 = 0
;   locals: a=4 b=5 c=6, a*100+b*10+c = 456
;   factorial(10) = 3628800
;   every call into libc had rsp mod 16 = 0

default rel

extern printf
extern puts
extern exit

; CCALL fn: call a libc function through the PLT after checking the alignment rule.
; `test spl, 15` looks at the low 4 bits of rsp; they must be zero.
%macro CCALL 1
    test    spl, 15
    jnz     misaligned
    call    %1 wrt ..plt
%endmacro

section .rodata
    f_popped  db "pushed 1, 2, 3; popped %ld, %ld, %ld", 10, 0
    f_mod3    db "after 3 pushes rsp mod 16 = %ld (a call now would break the rule)", 10, 0
    f_mod0    db "after the pops rsp mod 16 = %ld", 10, 0
    f_locals  db "locals: a=%ld b=%ld c=%ld, a*100+b*10+c = %ld", 10, 0
    f_fact    db "factorial(%ld) = %ld", 10, 0
    s_done    db "every call into libc had rsp mod 16 = 0", 0
    s_misal   db "stack.asm: misaligned call into libc", 0

section .text
global main

; combine(rdi = a, rsi = b, rdx = c) -> rax = a*100 + b*10 + c, and prints the locals.
; Frame layout after the prologue (rbp = frame base):
;   [rbp+8]  return address       [rbp]    caller's rbp
;   [rbp-8]  local a              [rbp-16] local b
;   [rbp-24] local c              [rbp-32] local result
; Entry: rsp = 16n+8. push rbp -> 16n. sub rsp, 32 -> still 16n: ready to call.
combine:
    push    rbp
    mov     rbp, rsp
    sub     rsp, 32                     ; 4 locals of 8 bytes; 32 is a multiple of 16
    mov     [rbp-8], rdi                ; spill the arguments into locals: the
    mov     [rbp-16], rsi               ; argument registers are caller-saved and
    mov     [rbp-24], rdx               ; printf will overwrite them

    imul    rax, rdi, 100
    imul    rcx, rsi, 10
    add     rax, rcx
    add     rax, rdx
    mov     [rbp-32], rax

    lea     rdi, [f_locals]
    mov     rsi, [rbp-8]
    mov     rdx, [rbp-16]
    mov     rcx, [rbp-24]
    mov     r8,  [rbp-32]
    xor     eax, eax                    ; variadic: no vector registers used
    CCALL   printf

    mov     rax, [rbp-32]               ; return value
    leave                               ; mov rsp, rbp; pop rbp
    ret

; factorial(rdi = n) -> rax = n!, recursively: one frame per level. rbx is
; callee-saved, so we save it before using it to keep n across the recursive call.
; Entry 16n+8; push rbp -> 16n; push rbx -> 16n+8; sub rsp, 8 -> 16n again.
factorial:
    push    rbp
    mov     rbp, rsp
    push    rbx
    sub     rsp, 8                      ; padding only, to keep the alignment rule
    mov     rbx, rdi
    mov     eax, 1
    cmp     rdi, 1
    jbe     .done
    lea     rdi, [rbx - 1]
    call    factorial                   ; our own function: aligned anyway, by habit
    imul    rax, rbx
.done:
    mov     rbx, [rbp-8]                ; restore rbx from where push put it
    leave
    ret

main:
    ; Entry: rsp = 16n+8 (libc's call pushed the return address).
    push    rbp                         ; 16n
    mov     rbp, rsp
    push    rbx                         ; 16n+8   rbx, r12: callee-saved, we use them
    push    r12                         ; 16n
    ; rsp is 16n here: every call below is made from this depth.

    ; ---- push/pop: last in, first out ----
    push    1
    push    2
    push    3                           ; three pushes: rsp = 16n - 24 = 16m + 8
    mov     r12, rsp
    and     r12, 15                     ; remember rsp mod 16 (8) to print later
    pop     rsi                         ; 3
    pop     rdx                         ; 2
    pop     rcx                         ; 1     rsp back at 16n
    lea     rdi, [f_popped]
    xor     eax, eax
    CCALL   printf

    lea     rdi, [f_mod3]
    mov     rsi, r12
    xor     eax, eax
    CCALL   printf

    lea     rdi, [f_mod0]
    mov     rsi, rsp
    and     rsi, 15
    xor     eax, eax
    CCALL   printf

    ; ---- a function with a frame and locals ----
    mov     edi, 4
    mov     esi, 5
    mov     edx, 6
    call    combine

    ; ---- recursion: ten frames on the stack at the deepest point ----
    mov     edi, 10
    call    factorial
    lea     rdi, [f_fact]
    mov     esi, 10
    mov     rdx, rax
    xor     eax, eax
    CCALL   printf

    lea     rdi, [s_done]
    CCALL   puts                        ; puts is not variadic: al does not matter

    xor     eax, eax                    ; return 0 from main
    pop     r12
    pop     rbx
    pop     rbp
    ret

; Reached only if CCALL found rsp misaligned. We cannot safely call libc with this
; rsp, so realign first (and rsp, -16), then report and exit(2).
misaligned:
    and     rsp, -16
    lea     rdi, [s_misal]
    call    puts wrt ..plt
    mov     edi, 2
    call    exit wrt ..plt

section .note.GNU-stack noalloc noexec nowrite progbits
