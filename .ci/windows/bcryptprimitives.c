/*
 * Stand-in bcryptprimitives.dll for wine < 9 (Debian 12 ships wine 8.0).
 *
 * Rust's std (1.78+) imports ProcessPrng from bcryptprimitives.dll; without
 * it a Windows binary fails to load before main (wine exit status 53). This
 * DLL exports only ProcessPrng, on top of BCryptGenRandom, which wine has.
 * Wine 9+ ships the real DLL; this one is then not needed.
 *
 * x86_64-w64-mingw32-gcc -shared -O2 -s -o bcryptprimitives.dll \
 *     bcryptprimitives.c -lbcrypt
 */
#include <windows.h>
#include <bcrypt.h>

/* Same contract as the real one: fill the buffer, report TRUE. */
__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE pbData, SIZE_T cbData)
{
    while (cbData > 0) {
        /* BCryptGenRandom takes a ULONG length: go in chunks. */
        ULONG n = cbData > 0x40000000u ? 0x40000000u : (ULONG)cbData;
        if (!BCRYPT_SUCCESS(BCryptGenRandom(NULL, pbData, n,
                                            BCRYPT_USE_SYSTEM_PREFERRED_RNG)))
            return FALSE;
        pbData += n;
        cbData -= n;
    }
    return TRUE;
}
