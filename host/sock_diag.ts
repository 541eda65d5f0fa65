/**
 * The kernel's TCP sockets through NETLINK_SOCK_DIAG (what `ss` uses), called through Deno FFI: every socket of this
 * network namespace, IPv4 and IPv6, in every state, as binary records instead of the text of /proc/net/tcp.
 */

/** The netlink dump of the TCP sockets of this network namespace; opened once per process, used by every scan. */
export interface SockDiag {
  /** Marks in `ports` (65536 entries, index = port) the local port of every TCP socket; counts sockets and receives. */
  markLocalPorts(ports: Uint8Array): { sockets: number; receives: number };
  /** Closes the library. */
  close(): void;
}

/** `linux/socket.h` AF_NETLINK. */
const AF_NETLINK = 16;
/** `linux/socket.h` AF_INET and AF_INET6: one dump each. */
const AF_INET = 2;
const AF_INET6 = 10;
const SOCK_RAW = 3;
const SOCK_CLOEXEC = 0o2000000;
/** `linux/netlink.h` NETLINK_SOCK_DIAG. */
const NETLINK_SOCK_DIAG = 4;
/** `linux/sock_diag.h` SOCK_DIAG_BY_FAMILY. */
const SOCK_DIAG_BY_FAMILY = 20;
const IPPROTO_TCP = 6;
/** `linux/netlink.h` NLM_F_REQUEST | NLM_F_DUMP (NLM_F_ROOT | NLM_F_MATCH). */
const DUMP_FLAGS = 0x01 | 0x100 | 0x200;
const NLMSG_ERROR = 2;
const NLMSG_DONE = 3;
/** sizeof(struct nlmsghdr): len u32, type u16, flags u16, seq u32, pid u32. */
const NLMSG_HDRLEN = 16;
/** sizeof(struct inet_diag_req_v2): family, protocol, ext, pad (u8 each), states u32, inet_diag_sockid (48). */
const REQ_V2_LEN = 56;
/** Offset of `id.idiag_sport` (big endian) in `struct inet_diag_msg`: family, state, timer, retrans come first. */
const MSG_SPORT = 4;
/** sizeof(struct inet_diag_msg). */
const MSG_LEN = 72;
/**
 * The kernel fills one message buffer of at most 32 KiB per receive (`netlink_recvmsg` caps its dump allocation);
 * a larger buffer never truncates one.
 */
const RECEIVE_BUFFER = 64 * 1024;

const SYMBOLS = {
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  send: { parameters: ["i32", "buffer", "usize", "i32"], result: "isize" },
  recv: { parameters: ["i32", "buffer", "usize", "i32"], result: "isize" },
  close: { parameters: ["i32"], result: "i32" },
  __errno_location: { parameters: [], result: "pointer" },
  strerror: { parameters: ["i32"], result: "pointer" },
} as const;

type Libc = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

function errnoText(libc: Libc): string {
  const errno = new Deno.UnsafePointerView(libc.__errno_location()!).getInt32();
  const text = libc.strerror(errno);
  return text ? `${Deno.UnsafePointerView.getCString(text)} (errno ${errno})` : `errno ${errno}`;
}

/** The dump request for one address family: nlmsghdr then inet_diag_req_v2 with every state bit set. */
export function dumpRequest(family: number, seq: number): Uint8Array {
  const bytes = new Uint8Array(NLMSG_HDRLEN + REQ_V2_LEN);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, bytes.length, true);
  view.setUint16(4, SOCK_DIAG_BY_FAMILY, true);
  view.setUint16(6, DUMP_FLAGS, true);
  view.setUint32(8, seq, true);
  bytes[NLMSG_HDRLEN] = family;
  bytes[NLMSG_HDRLEN + 1] = IPPROTO_TCP;
  // Every state, bound-but-inactive included where the kernel has it (6.5 and later); the socket id stays zero.
  view.setUint32(NLMSG_HDRLEN + 4, 0xffffffff, true);
  return bytes;
}

/**
 * Walks the netlink messages in `buf`: calls `onSocket` with the offset of each `inet_diag_msg`; returns true at
 * NLMSG_DONE. Throws on NLMSG_ERROR or a malformed message.
 */
export function walkMessages(buf: Uint8Array, onSocket: (offset: number) => void): boolean {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let offset = 0;
  while (offset + NLMSG_HDRLEN <= buf.length) {
    const length = view.getUint32(offset, true);
    const type = view.getUint16(offset + 4, true);
    if (length < NLMSG_HDRLEN || offset + length > buf.length) {
      throw new Error(`Cannot read the socket dump: a message of ${length} bytes at offset ${offset} is malformed`);
    }
    if (type === NLMSG_DONE) return true;
    if (type === NLMSG_ERROR) {
      const errno = -view.getInt32(offset + NLMSG_HDRLEN, true);
      throw new Error(`Cannot read the socket dump: the kernel answered errno ${errno}`);
    }
    if (type === SOCK_DIAG_BY_FAMILY && length >= NLMSG_HDRLEN + MSG_LEN) onSocket(offset + NLMSG_HDRLEN);
    // NLMSG_ALIGN: messages start on 4-byte boundaries.
    offset += (length + 3) & ~3;
  }
  return false;
}

/**
 * Opens libc for the dump; throws naming the cause. Each scan opens its own netlink socket (microseconds), so a scan
 * stopped halfway leaves nothing behind for the next one.
 */
export function openSockDiag(): SockDiag {
  let library: Deno.DynamicLibrary<typeof SYMBOLS>;
  try {
    library = Deno.dlopen("libc.so.6", SYMBOLS);
  } catch (error) {
    throw new Error(`Cannot load libc.so.6 for the netlink socket dump: ${(error as Error).message}`);
  }
  const libc = library.symbols;
  const buf = new Uint8Array(RECEIVE_BUFFER);
  const view = new DataView(buf.buffer);
  let seq = 0;

  function dump(fd: number, family: number, onSocket: (offset: number) => void): number {
    const request = dumpRequest(family, ++seq);
    if (Number(libc.send(fd, request, BigInt(request.length), 0)) !== request.length) {
      throw new Error(`Cannot send the socket dump request: ${errnoText(libc)}`);
    }
    for (let receives = 1;; receives++) {
      const n = Number(libc.recv(fd, buf, BigInt(buf.length), 0));
      if (n < 0) throw new Error(`Cannot receive the socket dump: ${errnoText(libc)}`);
      if (n === 0) throw new Error("Cannot receive the socket dump: the netlink socket closed");
      if (walkMessages(buf.subarray(0, n), onSocket)) return receives;
    }
  }

  return {
    markLocalPorts(ports) {
      const fd = libc.socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
      if (fd < 0) throw new Error(`Cannot open a NETLINK_SOCK_DIAG socket: ${errnoText(libc)}`);
      let sockets = 0;
      const mark = (offset: number) => {
        ports[view.getUint16(offset + MSG_SPORT, false)] = 1;
        sockets++;
      };
      try {
        const receives = dump(fd, AF_INET, mark) + dump(fd, AF_INET6, mark);
        return { sockets, receives };
      } finally {
        libc.close(fd);
      }
    },
    close() {
      library.close();
    },
  };
}
