// The GraphiQL explorer of coursepulse: queries and mutations over HTTP, subscriptions over
// graphql-ws on the same /graphql. The Headers tab's headers (e.g. Authorization) are sent
// with every HTTP request and as the websocket's connection_init payload.
const EXAMPLE_QUERY = `# coursepulse GraphiQL
#
# Sign in by adding a header in the Headers tab below, for example:
#   {"Authorization": "Basic <base64 of username:password>"}
# (or "Bearer <token>" for an API token). Then run, with Ctrl-Enter:

query MyCourses {
  me {
    username
  }
}
`;

const parameters = new URLSearchParams(window.location.search);
const fetchURL = window.location.origin + window.location.pathname;

function websocketURL(url) {
  const parsed = new URL(url);
  parsed.protocol = parsed.protocol === "https:" ? "wss:" : "ws:";
  parsed.hash = "";
  return parsed.toString();
}

const fetcher = GraphiQL.createFetcher({
  url: fetchURL,
  subscriptionUrl: websocketURL(fetchURL),
});

function updateURL(name, value) {
  if (value) parameters.set(name, value);
  else parameters.delete(name);
  const search = parameters.toString();
  history.replaceState(null, "", search ? "?" + search : window.location.pathname);
}

function Explorer() {
  const [query, setQuery] = React.useState(parameters.get("q") || EXAMPLE_QUERY);
  const explorer = React.useMemo(() => GraphiQLPluginExplorer.explorerPlugin(), []);
  return React.createElement(GraphiQL, {
    fetcher,
    query,
    variables: parameters.get("v") || undefined,
    defaultEditorToolsVisibility: true,
    shouldPersistHeaders: false,
    plugins: [explorer],
    onEditQuery(value) {
      setQuery(value);
      updateURL("q", value);
    },
    onEditVariables(value) {
      updateURL("v", value);
    },
  });
}

ReactDOM.createRoot(document.getElementById("graphiql")).render(React.createElement(Explorer));
