/* Tell require.js where the ipywidgets HTML manager lives.
 *
 * embed-amd.js registers itself as the AMD module
 * "@jupyter-widgets/html-manager/dist/embed-amd" and finds its font files next
 * to that module's URL; without this mapping the URL resolves relative to the
 * page (notebooks/@jupyter-widgets/...), which does not exist offline.
 */
(function () {
  "use strict";
  var here = document.currentScript.src.split("?")[0];
  var base = here.slice(0, here.lastIndexOf("/") + 1) + "html-manager";
  window.require.config({ paths: { "@jupyter-widgets/html-manager/dist": base } });
})();
