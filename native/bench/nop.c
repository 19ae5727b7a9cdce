/*
 * The launcher benches' `--command nop`: a command that exits 0 at once and runs no C library
 * start-up. A static glibc program (busybox's /bin/true among them) probes the CPU with CPUID before
 * main(), and on a virtual machine every CPUID is a VM exit: about 6.8 µs each, 0.55 ms per start
 * on the 2-vCPU Intel VM of 2026-12-05. With this command every runtime's figure is its own work.
 *
 *   gcc -O2 -static -nostdlib -o nop nop.c
 */
void _start(void) {
#if defined(__x86_64__)
  __asm__ volatile("mov $231, %eax\n\txor %edi, %edi\n\tsyscall");  // exit_group(0)
#elif defined(__aarch64__)
  __asm__ volatile("mov x8, #94\n\tmov x0, #0\n\tsvc #0");  // exit_group(0)
#else
#error "nop.c: exit_group for this architecture"
#endif
  for (;;) {
  }
}
