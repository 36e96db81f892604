// JceksSecrets - dump the secret-key entries of a JCEKS store through the JDK KeyStore API
// (what keytool uses).  Used by gen_corpus.sh; run as a single-file source program:
//   java JceksSecrets.java STORE STOREPASS ALIAS=KEYPASS...
// Output, one line per secret-key entry (sorted by alias):
//   alias <TAB> Key.getAlgorithm() <TAB> bits (encoded length * 8) <TAB> SHA-256 of getEncoded()
import java.io.FileInputStream;
import java.security.Key;
import java.security.KeyStore;
import java.security.MessageDigest;
import java.util.Collections;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;

public class JceksSecrets {
    public static void main(String[] args) throws Exception {
        KeyStore ks = KeyStore.getInstance("JCEKS");
        try (FileInputStream in = new FileInputStream(args[0])) {
            ks.load(in, args[1].toCharArray()); // verifies the store digest
        }
        Map<String, String> keyPass = new HashMap<>();
        for (int i = 2; i < args.length; i++) {
            String[] kv = args[i].split("=", 2);
            keyPass.put(kv[0], kv[1]);
        }
        List<String> aliases = Collections.list(ks.aliases());
        Collections.sort(aliases);
        for (String alias : aliases) {
            if (!ks.entryInstanceOf(alias, KeyStore.SecretKeyEntry.class)) continue;
            Key key = ks.getKey(alias, keyPass.getOrDefault(alias, args[1]).toCharArray());
            byte[] enc = key.getEncoded();
            String sha = HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(enc));
            System.out.println(alias + "\t" + key.getAlgorithm() + "\t" + (enc.length * 8) + "\t" + sha);
        }
    }
}
