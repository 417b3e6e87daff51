; mmap_munmap.asm: anonymous memory straight from the kernel with mmap(2)/munmap(2)
;
; What it teaches
;   * The system call convention: number in rax, arguments in rdi, rsi, rdx, r10, r8,
;     r9 (r10, not rcx: the syscall instruction overwrites rcx and r11). For mmap:
;       rax = 9   rdi = addr hint (0: kernel chooses)   rsi = length
;       rdx = prot (PROT_READ|PROT_WRITE = 3)           r10 = flags
;       r8  = fd (-1 for anonymous memory)              r9  = offset (0)
;     munmap is rax = 11 with rdi = address, rsi = length. (One of the documents
;     passes the fd in rdi and the length in rsi but no flags at all, and frees with
;     syscall 10, which is mprotect.)
;   * Errors: a raw system call returns -errno, i.e. a value in [-4095, -1]. An
;     address can never be that high in user space, so the check is one unsigned
;     compare: `cmp rax, -4095` / `jae error`. Do not test for "negative" or for the
;     C library's MAP_FAILED - that is libc's wrapper, not the kernel.
;   * Fresh anonymous pages read as zero; the length is rounded up to whole pages;
;     munmap of a part of a mapping is allowed (here: the middle page).
;
; Build and run (no libc)
;   nasm -f elf64 mmap_munmap.asm -o mmap_munmap.o
;   cc -nostdlib -static mmap_munmap.o -o mmap_munmap
;   ./mmap_munmap
;
; Expected output (exit status 0)
;   mmap: 3 pages (12288 bytes) mapped
;   fresh pages read as zero: yes
;   filled 12288 bytes with 1, sum = 12288
;   munmap(middle page) = 0
;   munmap(first page) = 0, munmap(last page) = 0
;   mmap(length 0) failed as expected: errno 22 (EINVAL)
;   mmap with MAP_ANONYMOUS but no MAP_PRIVATE failed as expected: errno 22 (EINVAL)

default rel

%define SYS_write  1
%define SYS_mmap   9
%define SYS_munmap 11
%define SYS_exit   60

%define PROT_READ     0x1
%define PROT_WRITE    0x2
%define MAP_PRIVATE   0x02
%define MAP_ANONYMOUS 0x20
%define EINVAL        22

PAGE    equ 4096
LEN     equ 3 * PAGE

section .rodata
    m_mapped  db "mmap: 3 pages (12288 bytes) mapped", 10
    m_mapped_l equ $ - m_mapped
    m_zero    db "fresh pages read as zero: yes", 10
    m_zero_l  equ $ - m_zero
    m_sum     db "filled 12288 bytes with 1, sum = "
    m_sum_l   equ $ - m_sum
    m_unmid   db "munmap(middle page) = "
    m_unmid_l equ $ - m_unmid
    m_unfirst db "munmap(first page) = "
    m_unfirst_l equ $ - m_unfirst
    m_unlast  db ", munmap(last page) = "
    m_unlast_l equ $ - m_unlast
    m_len0    db "mmap(length 0) failed as expected: errno "
    m_len0_l  equ $ - m_len0
    m_noflag  db "mmap with MAP_ANONYMOUS but no MAP_PRIVATE failed as expected: errno "
    m_noflag_l equ $ - m_noflag
    m_einval  db " (EINVAL)", 10
    m_einval_l equ $ - m_einval
    m_fail    db "mmap_munmap: FAILED: "
    m_fail_l  equ $ - m_fail
    e_map     db "mmap returned an error", 10
    e_map_l   equ $ - e_map
    e_zero    db "fresh pages were not zero", 10
    e_zero_l  equ $ - e_zero
    e_unmap   db "munmap returned an error", 10
    e_unmap_l equ $ - e_unmap
    e_ok      db "a bad mmap call succeeded", 10
    e_ok_l    equ $ - e_ok
    nl        db 10

section .bss
    numbuf  resb 24

section .text
global _start

print:                                  ; rsi = buf, rdx = len
    mov     eax, SYS_write
    mov     edi, 1
    syscall
    ret

print_u64:                              ; rdi = value, decimal
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

fail:                                   ; rsi = message, rdx = len; exit(1)
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

; mmap(rsi = length, r10 = flags) -> rax: an anonymous read-write mapping, kernel
; chooses the address. The other four arguments are set here, in their registers.
anon_mmap:
    mov     eax, SYS_mmap
    xor     edi, edi                    ; addr = NULL
    mov     edx, PROT_READ | PROT_WRITE
    mov     r8, -1                      ; fd = -1
    xor     r9d, r9d                    ; offset = 0
    syscall
    ret

; munmap(rdi = addr, rsi = length) -> rax = 0 or -errno
sys_munmap:
    mov     eax, SYS_munmap
    syscall
    ret

_start:
    ; ---- 1. map three pages ----
    mov     esi, LEN
    mov     r10d, MAP_PRIVATE | MAP_ANONYMOUS
    call    anon_mmap
    cmp     rax, -4095                  ; rax in [-4095, -1] (unsigned: >= 2^64-4095)?
    jae     .map_failed
    mov     r12, rax                    ; r12 = base address (callee-saved)
    lea     rsi, [m_mapped]
    mov     edx, m_mapped_l
    call    print

    ; ---- 2. anonymous memory starts zeroed ----
    xor     eax, eax
    xor     ecx, ecx
.zero:
    or      rax, [r12 + rcx*8]
    inc     ecx
    cmp     ecx, LEN / 8
    jb      .zero
    test    rax, rax
    jnz     .not_zero
    lea     rsi, [m_zero]
    mov     edx, m_zero_l
    call    print

    ; ---- 3. every byte of the three pages is ours: fill them all with 1 (rep stosb
    ;         stores al to [rdi], rcx times), then add them back up ----
    mov     rdi, r12
    mov     ecx, LEN
    mov     al, 1
    cld
    rep     stosb
    xor     eax, eax
    xor     ecx, ecx
.sum:
    movzx   edx, byte [r12 + rcx]
    add     rax, rdx
    inc     ecx
    cmp     ecx, LEN
    jb      .sum
    mov     r13, rax
    lea     rsi, [m_sum]
    mov     edx, m_sum_l
    call    print
    mov     rdi, r13
    call    print_u64
    lea     rsi, [nl]
    mov     edx, 1
    call    print

    ; ---- 4. unmap the middle page only: the mapping splits into two ----
    lea     rdi, [r12 + PAGE]
    mov     esi, PAGE
    call    sys_munmap
    test    rax, rax
    jnz     .unmap_failed
    lea     rsi, [m_unmid]
    mov     edx, m_unmid_l
    call    print
    xor     edi, edi
    call    print_u64
    lea     rsi, [nl]
    mov     edx, 1
    call    print

    ; ---- 5. and the two remaining pieces ----
    mov     rdi, r12
    mov     esi, PAGE
    call    sys_munmap
    test    rax, rax
    jnz     .unmap_failed
    lea     rdi, [r12 + 2*PAGE]
    mov     esi, PAGE
    call    sys_munmap
    test    rax, rax
    jnz     .unmap_failed
    lea     rsi, [m_unfirst]
    mov     edx, m_unfirst_l
    call    print
    xor     edi, edi
    call    print_u64
    lea     rsi, [m_unlast]
    mov     edx, m_unlast_l
    call    print
    xor     edi, edi
    call    print_u64
    lea     rsi, [nl]
    mov     edx, 1
    call    print

    ; ---- 6. errors come back as -errno: a zero length is EINVAL ----
    xor     esi, esi
    mov     r10d, MAP_PRIVATE | MAP_ANONYMOUS
    call    anon_mmap
    cmp     rax, -4095
    jb      .bad_call_ok
    neg     rax                         ; -(-22) = 22
    mov     r13, rax
    lea     rsi, [m_len0]
    mov     edx, m_len0_l
    call    print
    mov     rdi, r13
    call    print_u64
    lea     rsi, [m_einval]
    mov     edx, m_einval_l
    call    print

    ; ---- 7. the documents' mistake: flags in r10 left out. Exactly one of
    ;         MAP_PRIVATE / MAP_SHARED is required; MAP_ANONYMOUS alone is EINVAL
    ;         (and with r10 = 0 the kernel takes it as a file mapping of fd -1: EBADF) ----
    mov     esi, PAGE
    mov     r10d, MAP_ANONYMOUS         ; missing MAP_PRIVATE
    call    anon_mmap
    cmp     rax, -4095
    jb      .bad_call_ok
    neg     rax
    mov     r13, rax
    lea     rsi, [m_noflag]
    mov     edx, m_noflag_l
    call    print
    mov     rdi, r13
    call    print_u64
    lea     rsi, [m_einval]
    mov     edx, m_einval_l
    call    print

    mov     eax, SYS_exit
    xor     edi, edi
    syscall

.map_failed:
    lea     rsi, [e_map]
    mov     edx, e_map_l
    jmp     fail
.not_zero:
    lea     rsi, [e_zero]
    mov     edx, e_zero_l
    jmp     fail
.unmap_failed:
    lea     rsi, [e_unmap]
    mov     edx, e_unmap_l
    jmp     fail
.bad_call_ok:
    lea     rsi, [e_ok]
    mov     edx, e_ok_l
    jmp     fail

section .note.GNU-stack noalloc noexec nowrite progbits
