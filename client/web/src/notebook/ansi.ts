// ANSI SGR colour sequences (IPython tracebacks, colored prints) to DOM nodes. Everything
// else in a CSI sequence is dropped; text is only ever set as text, never as HTML.

const BASIC = ["#000000", "#c91b00", "#00a600", "#a68a0d", "#0225c7", "#c930c7", "#00a6b2", "#7f7f7f"];
const BRIGHT = ["#676767", "#ff6d67", "#3fb950", "#d29922", "#6871ff", "#ff76ff", "#5ff8fd", "#fffefe"];

interface Style {
  fg?: string;
  bg?: string;
  bold?: boolean;
  italic?: boolean;
  underline?: boolean;
}

function color256(n: number): string {
  if (n < 8) return BASIC[n];
  if (n < 16) return BRIGHT[n - 8];
  if (n < 232) {
    const i = n - 16;
    const level = (v: number) => (v === 0 ? 0 : 55 + v * 40);
    return `rgb(${level(Math.floor(i / 36))},${level(Math.floor(i / 6) % 6)},${level(i % 6)})`;
  }
  const grey = 8 + (n - 232) * 10;
  return `rgb(${grey},${grey},${grey})`;
}

function apply(style: Style, codes: number[]): Style {
  const s = { ...style };
  for (let i = 0; i < codes.length; i++) {
    const c = codes[i];
    if (c === 0) {
      delete s.fg; delete s.bg; delete s.bold; delete s.italic; delete s.underline;
    } else if (c === 1) s.bold = true;
    else if (c === 3) s.italic = true;
    else if (c === 4) s.underline = true;
    else if (c === 22) s.bold = false;
    else if (c === 23) s.italic = false;
    else if (c === 24) s.underline = false;
    else if (c >= 30 && c <= 37) s.fg = BASIC[c - 30];
    else if (c === 39) delete s.fg;
    else if (c >= 40 && c <= 47) s.bg = BASIC[c - 40];
    else if (c === 49) delete s.bg;
    else if (c >= 90 && c <= 97) s.fg = BRIGHT[c - 90];
    else if (c >= 100 && c <= 107) s.bg = BRIGHT[c - 100];
    else if ((c === 38 || c === 48) && codes[i + 1] === 5 && codes[i + 2] !== undefined) {
      const value = color256(codes[i + 2]);
      if (c === 38) s.fg = value;
      else s.bg = value;
      i += 2;
    } else if ((c === 38 || c === 48) && codes[i + 1] === 2 && codes[i + 4] !== undefined) {
      const value = `rgb(${codes[i + 2]},${codes[i + 3]},${codes[i + 4]})`;
      if (c === 38) s.fg = value;
      else s.bg = value;
      i += 4;
    }
  }
  return s;
}

/** Appends `text`, with its ANSI colours as styled spans, to `into`. */
export function renderAnsi(text: string, into: HTMLElement) {
  // Carriage returns without a newline overwrite the line (progress bars): keep the last.
  text = text.replace(/[^\n]*\r(?!\n)/g, "");
  const pattern = /\x1b\[([0-9;]*)([A-Za-z])/g;
  let style: Style = {};
  let last = 0;
  const fragment = document.createDocumentFragment();
  const push = (chunk: string) => {
    if (!chunk) return;
    if (!style.fg && !style.bg && !style.bold && !style.italic && !style.underline) {
      fragment.appendChild(document.createTextNode(chunk));
      return;
    }
    const span = document.createElement("span");
    if (style.fg) span.style.color = style.fg;
    if (style.bg) span.style.backgroundColor = style.bg;
    if (style.bold) span.style.fontWeight = "bold";
    if (style.italic) span.style.fontStyle = "italic";
    if (style.underline) span.style.textDecoration = "underline";
    span.textContent = chunk;
    fragment.appendChild(span);
  };
  for (let m = pattern.exec(text); m; m = pattern.exec(text)) {
    push(text.slice(last, m.index));
    last = pattern.lastIndex;
    if (m[2] === "m") {
      const codes = m[1] === "" ? [0] : m[1].split(";").map((x) => Number(x) || 0);
      style = apply(style, codes);
    }
  }
  push(text.slice(last).replace(/\x1b[^[]?/g, ""));
  into.appendChild(fragment);
}

/** Text without ANSI sequences (for a plain copy). */
export function stripAnsi(text: string): string {
  return text.replace(/\x1b\[[0-9;]*[A-Za-z]/g, "");
}
