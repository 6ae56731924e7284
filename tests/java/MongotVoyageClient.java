// mongot's embedding HTTP client, reduced to what touches the wire (VoyageClient.buildRequest and
// extractVectorsFromResponse, mongot d38b926): java.net.http.HttpClient built with Version.HTTP_2 (so on
// http:// the JDK offers "Upgrade: h2c"), exactly four headers and no Content-Type, the body sent as a string;
// the response parsed by mongot's rules (object, data[] and usage.total_tokens required; each item's
// embedding a base64 string, index an int; vectors taken in data order) and decoded as mongot decodes them:
// little-endian float32, raw int8, or packed bits with Voyage's -128 offset added back.
//
// Usage: java MongotVoyageClient <url> <requests.tsv>; each line: key \t model \t tier \t dtype \t body-file.
// Prints one JSON line per request: {"status", "version", "total_tokens", "vectors"} or {"status", "body_b64"}.

import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

public class MongotVoyageClient {
  public static void main(String[] args) throws Exception {
    HttpClient client = HttpClient.newBuilder().version(HttpClient.Version.HTTP_2).build();
    for (String line : Files.readAllLines(Path.of(args[1]))) {
      if (line.isBlank()) continue;
      String[] f = line.split("\t");
      String body = Files.readString(Path.of(f[4]));
      HttpRequest.Builder b = HttpRequest.newBuilder().uri(URI.create(args[0])).timeout(Duration.ofSeconds(60));
      if (!f[0].isEmpty()) b.header("Authorization", "Bearer " + f[0]);
      b.header("User-Agent", "mongot/UNKNOWN (UNKNOWN)");
      b.header("X-Voyage-Model", f[1]);
      b.header("X-Voyage-Tier", f[2]);
      HttpRequest request = b.POST(HttpRequest.BodyPublishers.ofString(body)).build();
      HttpResponse<String> response = client.send(request, HttpResponse.BodyHandlers.ofString());
      System.out.println(report(response, f[3]));
    }
  }

  static String report(HttpResponse<String> response, String dtype) {
    int status = response.statusCode();
    String head = "{\"status\":" + status + ",\"version\":\"" + response.version() + "\"";
    if (status != 200) {
      String b64 = Base64.getEncoder().encodeToString(response.body().getBytes(StandardCharsets.UTF_8));
      return head + ",\"body_b64\":\"" + b64 + "\"}";
    }
    Map<?, ?> root = (Map<?, ?>) new Json(response.body()).value();
    require(root.get("object") instanceof String, "object");
    require(root.get("data") instanceof List, "data");
    require(root.get("usage") instanceof Map, "usage");
    Object tokens = ((Map<?, ?>) root.get("usage")).get("total_tokens");
    require(tokens instanceof Long, "usage.total_tokens");
    StringBuilder out = new StringBuilder(head).append(",\"total_tokens\":").append(tokens).append(",\"vectors\":[");
    boolean first = true;
    for (Object item : (List<?>) root.get("data")) {
      Map<?, ?> m = (Map<?, ?>) item;
      require(m.get("object") instanceof String, "data[].object");
      require(m.get("embedding") instanceof String, "data[].embedding must be a base64 string");
      require(m.get("index") instanceof Long, "data[].index");
      ByteBuffer buf = ByteBuffer.wrap(Base64.getDecoder().decode((String) m.get("embedding")))
          .order(ByteOrder.LITTLE_ENDIAN);
      out.append(first ? "[" : ",[");
      first = false;
      if (dtype.equals("float")) {
        require(buf.remaining() % 4 == 0, "float bytes not a multiple of 4");
        for (int i = 0; buf.remaining() > 0; i++) out.append(i == 0 ? "" : ",").append(buf.getFloat());
      } else {
        for (int i = 0; buf.remaining() > 0; i++) {
          int v = buf.get();
          if (dtype.equals("binary")) v += 128; // mongot: stored = unsigned - 128, added back before Vector.fromBits
          out.append(i == 0 ? "" : ",").append(v);
        }
      }
      out.append("]");
    }
    return out.append("]}").toString();
  }

  static void require(boolean ok, String what) {
    if (!ok) throw new IllegalStateException("response does not parse by mongot's rules: " + what);
  }

  /** A minimal JSON reader (objects, arrays, strings, integers as Long, other numbers as Double, literals). */
  static final class Json {
    private final String s;
    private int i;

    Json(String s) { this.s = s; }

    Object value() {
      skip();
      char c = s.charAt(i);
      if (c == '{') return object();
      if (c == '[') return array();
      if (c == '"') return string();
      if (s.startsWith("true", i)) { i += 4; return Boolean.TRUE; }
      if (s.startsWith("false", i)) { i += 5; return Boolean.FALSE; }
      if (s.startsWith("null", i)) { i += 4; return null; }
      return number();
    }

    private Map<String, Object> object() {
      Map<String, Object> m = new LinkedHashMap<>();
      i++;
      skip();
      if (s.charAt(i) == '}') { i++; return m; }
      while (true) {
        skip();
        String k = string();
        skip();
        expect(':');
        m.put(k, value());
        skip();
        if (s.charAt(i) == ',') { i++; continue; }
        expect('}');
        return m;
      }
    }

    private List<Object> array() {
      List<Object> l = new ArrayList<>();
      i++;
      skip();
      if (s.charAt(i) == ']') { i++; return l; }
      while (true) {
        l.add(value());
        skip();
        if (s.charAt(i) == ',') { i++; continue; }
        expect(']');
        return l;
      }
    }

    private String string() {
      expect('"');
      StringBuilder b = new StringBuilder();
      while (s.charAt(i) != '"') {
        char c = s.charAt(i++);
        if (c == '\\') {
          char e = s.charAt(i++);
          switch (e) {
            case 'n': b.append('\n'); break;
            case 't': b.append('\t'); break;
            case 'r': b.append('\r'); break;
            case 'b': b.append('\b'); break;
            case 'f': b.append('\f'); break;
            case 'u': b.append((char) Integer.parseInt(s.substring(i, i + 4), 16)); i += 4; break;
            default: b.append(e);
          }
        } else {
          b.append(c);
        }
      }
      i++;
      return b.toString();
    }

    private Object number() {
      int start = i;
      while (i < s.length() && "+-0123456789.eE".indexOf(s.charAt(i)) >= 0) i++;
      String t = s.substring(start, i);
      if (t.isEmpty()) throw new IllegalStateException("bad JSON at " + start);
      return t.matches("-?\\d+") ? (Object) Long.parseLong(t) : (Object) Double.parseDouble(t);
    }

    private void skip() { while (i < s.length() && Character.isWhitespace(s.charAt(i))) i++; }

    private void expect(char c) {
      if (s.charAt(i) != c) throw new IllegalStateException("expected " + c + " at " + i);
      i++;
    }
  }
}
