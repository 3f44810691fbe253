// Tandem's web client: one bundle, one page per path.
//   /  and  /home   the home page: your notebooks, shared with you, new, upload
//   /n/{id}         a notebook (its URL is its sharing link)
// Signing in is the server's page at /signin?return_to=…

import "./style.css";
import { showHome } from "./home";
import { showNotebook } from "./notebook/page";

function route() {
  const root = document.getElementById("app");
  if (!root) return;
  const match = /^\/n\/([A-Za-z0-9_-]+)\/?$/.exec(location.pathname);
  if (match) {
    void showNotebook(root, match[1]);
  } else {
    void showHome(root);
  }
}

route();
