// JksInspect - dump JKS/JCEKS/PKCS12 keystore entries through the JDK KeyStore API
// (the same code path `keytool -list` uses).  Used by manifest.py; run as a
// single-file source program:   java JksInspect.java SPEC.tsv
//
// SPEC.tsv (UTF-8), one keystore per line:
//   file <TAB> storetype <TAB> storepass [<TAB> candidate key password]...
// Output (UTF-8), one line per entry:
//   file <TAB> alias <TAB> key|trusted <TAB> index of the candidate password that
//   unlocked the key (-1 for trusted) <TAB> key algorithm <TAB> key bits <TAB>
//   comma-separated base64 DER certificates (key entries: the chain, leaf first)
import java.io.FileInputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.Key;
import java.security.KeyStore;
import java.security.cert.Certificate;
import java.security.interfaces.DSAKey;
import java.security.interfaces.ECKey;
import java.security.interfaces.RSAKey;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Collections;
import java.util.List;

public class JksInspect {
    public static void main(String[] args) throws Exception {
        PrintStream out = new PrintStream(System.out, true, StandardCharsets.UTF_8);
        for (String line : Files.readAllLines(Path.of(args[0]), StandardCharsets.UTF_8)) {
            if (line.isEmpty()) continue;
            String[] f = line.split("\t", -1);
            KeyStore ks = KeyStore.getInstance(f[1]);
            try (FileInputStream in = new FileInputStream(f[0])) {
                ks.load(in, f[2].toCharArray()); // verifies the store integrity hash
            }
            List<String> aliases = Collections.list(ks.aliases());
            Collections.sort(aliases);
            for (String alias : aliases) {
                String kind, alg = "", bits = "";
                int pwIndex = -1;
                Certificate[] certs;
                if (ks.isKeyEntry(alias)) {
                    kind = "key";
                    Key key = null;
                    for (int i = 3; i < f.length && key == null; i++) {
                        try {
                            key = ks.getKey(alias, f[i].toCharArray());
                            pwIndex = i - 3;
                        } catch (java.security.UnrecoverableKeyException e) {
                            // wrong candidate, try the next one
                        }
                    }
                    if (key == null) throw new IllegalStateException(f[0] + ": no key password works for " + alias);
                    alg = key.getAlgorithm();
                    if (key instanceof RSAKey) bits = "" + ((RSAKey) key).getModulus().bitLength();
                    else if (key instanceof ECKey) bits = "" + ((ECKey) key).getParams().getCurve().getField().getFieldSize();
                    else if (key instanceof DSAKey) bits = "" + ((DSAKey) key).getParams().getP().bitLength();
                    certs = ks.getCertificateChain(alias);
                } else {
                    kind = "trusted";
                    certs = new Certificate[] {ks.getCertificate(alias)};
                }
                List<String> b64 = new ArrayList<>();
                for (Certificate c : certs) b64.add(Base64.getEncoder().encodeToString(c.getEncoded()));
                out.println(String.join("\t", f[0], alias, kind, "" + pwIndex, alg, bits, String.join(",", b64)));
            }
        }
    }
}
