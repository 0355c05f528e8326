/** How messages and stories write numbers: page addresses and pfns in hex, as the kernel's own messages do. */
export const hex = (n: number): string => `0x${n.toString(16)}`;
