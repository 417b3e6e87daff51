; static_data.asm: static memory in .data, .rodata and .bss (x86-64 Linux, NASM)
;
; What it teaches
;   * .data holds initialised variables. db/dw/dd/dq define 1/2/4/8-byte items;
;     the *size of each access* is written on the instruction (byte/word/dword/qword),
;     because NASM cannot guess it from the label.
;   * .bss reserves space (resb/resw/resd/resq) that takes no room in the file: the
;     loader maps it as zero-filled pages. "Uninitialised" in the source, but it is
;     *guaranteed zero* at start-up; the program checks that before writing to it.
;   * The memory is there for the whole run and is never freed: static allocation is
;     decided when the program is linked.
;   * Output without libc: the write(2) system call (rax=1, rdi=fd, rsi=buf, rdx=len).
;   * `default rel` + `[rel x]`: RIP-relative addressing, so the code works in a
;     position-independent executable (the default for gcc on Debian/Ubuntu).
;
; Build and run (no libc: the program has its own _start)
;   nasm -f elf64 static_data.asm -o static_data.o
;   cc -nostdlib -static static_data.o -o static_data
;   ./static_data
;
; Expected output (exit status 0)
;   counter (db) = 10
;   year (dw) = 2024
;   magic (dd) = 3735928559
;   big (dq) = 1234605616436508552
;   array (dd 1..5) sum = 15
;   bss: 4096 bytes, all zero at start
;   bss after writes: table[0] = 7, table[511] = 42, buffer = "static!"
;   counter after add = 11

default rel

; --- Linux x86-64 system call numbers (see /usr/include/asm/unistd_64.h) -----------
%define SYS_write 1
%define SYS_exit  60
%define STDOUT    1

section .data
    counter     db  10                  ; 1 byte
    year        dw  2024                ; 2 bytes, little-endian: E8 07
    magic       dd  0xDEADBEEF          ; 4 bytes
    big         dq  0x1122334455667788  ; 8 bytes
    array       dd  1, 2, 3, 4, 5       ; five 4-byte items
    ARRAY_LEN   equ ($ - array) / 4     ; equ: an assemble-time constant, takes no memory

section .rodata                         ; read-only data: writing here would fault
    s_counter   db  "counter (db) = "
    s_year      db  "year (dw) = "
    s_magic     db  "magic (dd) = "
    s_big       db  "big (dq) = "
    s_sum       db  "array (dd 1..5) sum = "
    s_zero      db  "bss: 4096 bytes, all zero at start", 10
    s_zero_len  equ $ - s_zero
    s_nonzero   db  "bss: NOT zero at start", 10
    s_nz_len    equ $ - s_nonzero
    s_after     db  "bss after writes: table[0] = "
    s_t511      db  ", table[511] = "
    s_buf       db  ', buffer = "'
    s_quote_nl  db  '"', 10
    s_count2    db  "counter after add = "
    s_static    db  "static!"
    STATIC_LEN  equ $ - s_static

section .bss
    table       resq 512                ; 512 * 8 = 4096 bytes, zero-filled by the loader
    BSS_TABLE   equ $ - table
    buffer      resb 16                 ; scratch text buffer
    numbuf      resb 24                 ; digits of a number (u64 has at most 20)

section .text
global _start

; print(rsi = address, rdx = length): write(1, rsi, rdx). Clobbers rax, rdi, rcx, r11
; (the syscall instruction itself overwrites rcx and r11).
print:
    mov     eax, SYS_write
    mov     edi, STDOUT
    syscall
    ret

; print_u64(rdi = value): prints the value in decimal. Digits are produced from the
; right into numbuf, then written in one call.
print_u64:
    mov     rax, rdi
    lea     rsi, [numbuf + 24]          ; one past the end of the buffer
    mov     ecx, 10
.digit:
    xor     edx, edx
    div     rcx                         ; rdx:rax / 10 -> rax quotient, rdx remainder
    add     dl, '0'
    dec     rsi
    mov     [rsi], dl
    test    rax, rax
    jnz     .digit
    lea     rdx, [numbuf + 24]
    sub     rdx, rsi                    ; length = end - first digit
    jmp     print                       ; tail call

; print_labelled(rsi = label, rdx = label length, rdi = value): "label<value>\n"
print_labelled:
    push    rdi
    call    print
    pop     rdi
    call    print_u64
    ; fall through into newline
newline:
    lea     rsi, [nl]
    mov     edx, 1
    jmp     print

_start:
    ; ---- read each .data item with the matching width, zero-extended to 64 bits ----
    lea     rsi, [s_counter]
    mov     edx, s_year - s_counter
    movzx   edi, byte [counter]         ; db: 1 byte
    call    print_labelled

    lea     rsi, [s_year]
    mov     edx, s_magic - s_year
    movzx   edi, word [year]            ; dw: 2 bytes
    call    print_labelled

    lea     rsi, [s_magic]
    mov     edx, s_big - s_magic
    mov     edi, dword [magic]          ; dd: writing edi zero-extends into rdi
    call    print_labelled

    lea     rsi, [s_big]
    mov     edx, s_sum - s_big
    mov     rdi, qword [big]            ; dq: 8 bytes
    call    print_labelled

    ; ---- walk an array: element i lives at array + 4*i ----
    xor     edi, edi                    ; sum
    xor     ecx, ecx                    ; i
    lea     r8, [array]                 ; base address in a register, then scaled index
.sum:
    add     edi, dword [r8 + rcx*4]
    inc     ecx
    cmp     ecx, ARRAY_LEN
    jb      .sum
    lea     rsi, [s_sum]
    mov     edx, s_zero - s_sum
    call    print_labelled

    ; ---- .bss is zero: OR every qword together; any set bit shows up in rax ----
    xor     eax, eax
    xor     ecx, ecx
    lea     r8, [table]
.check:
    or      rax, [r8 + rcx*8]
    inc     ecx
    cmp     ecx, BSS_TABLE / 8
    jb      .check
    test    rax, rax
    jnz     .not_zero
    lea     rsi, [s_zero]
    mov     edx, s_zero_len
    call    print

    ; ---- write to .bss, read it back ----
    mov     qword [table], 7
    mov     qword [table + 511*8], 42   ; last element: offset 4088, still inside
    lea     rdi, [buffer]               ; copy "static!" into the buffer byte by byte
    lea     rsi, [s_static]
    mov     ecx, STATIC_LEN
    cld
    rep     movsb

    lea     rsi, [s_after]
    mov     edx, s_t511 - s_after
    call    print
    mov     rdi, [table]
    call    print_u64
    lea     rsi, [s_t511]
    mov     edx, s_buf - s_t511
    call    print
    mov     rdi, [table + 511*8]
    call    print_u64
    lea     rsi, [s_buf]
    mov     edx, s_quote_nl - s_buf
    call    print
    lea     rsi, [buffer]
    mov     edx, STATIC_LEN
    call    print
    lea     rsi, [s_quote_nl]
    mov     edx, 2
    call    print

    ; ---- .data is writable too ----
    add     byte [counter], 1
    lea     rsi, [s_count2]
    mov     edx, s_static - s_count2
    movzx   edi, byte [counter]
    call    print_labelled

    mov     eax, SYS_exit
    xor     edi, edi                    ; status 0
    syscall

.not_zero:
    lea     rsi, [s_nonzero]
    mov     edx, s_nz_len
    call    print
    mov     eax, SYS_exit
    mov     edi, 1
    syscall

section .rodata
    nl          db  10

; Tell the linker this object does not need an executable stack (otherwise recent
; binutils warn, and the whole program would get one).
section .note.GNU-stack noalloc noexec nowrite progbits
